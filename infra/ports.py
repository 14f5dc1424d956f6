"""Ports of the managed data stores and PgBouncer, from infra/facts.yaml (the overlays' NetworkPolicies
are generated from the same file)."""

from infra.facts import load

POSTGRES_PORT = load().ports["postgres"]
REDIS_PORT = load().ports["redis"]
PGBOUNCER_PORT = load().ports["pgbouncer"]  # k8s/base/pgbouncer.yaml listens here
