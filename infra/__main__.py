"""Pulumi entry point. The program is not written yet (issue #6): fail clearly rather than deploy nothing."""

raise SystemExit("The Chat Wizard Pulumi program is not written yet (issue #6); see infra/README.md.")
