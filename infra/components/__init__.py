"""The estate's building blocks: one ComponentResource per concern, wired together in infra/__main__.py."""
