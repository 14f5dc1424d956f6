"""Ports of the managed data stores, in one place for security groups, endpoints and URLs."""

POSTGRES_PORT = 5432
REDIS_PORT = 6379
PGBOUNCER_PORT = 6432  # k8s/base/pgbouncer.yaml listens here
