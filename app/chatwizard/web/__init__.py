"""The learner-facing web app: one HTML shell, a few ES modules and a stylesheet over the /v1 JSON API."""
