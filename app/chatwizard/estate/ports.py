"""The local estate's ports: one place, read by `chatwizard up`, its monitoring and the docs."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from chatwizard.core.settings import APP_PORT, METRICS_PORT


@dataclass(frozen=True)
class EstatePorts:
    app: int = APP_PORT
    metrics: int = METRICS_PORT
    primary: int = 5432
    replica: int = 5433
    redis: int = 6379
    prometheus: int = 9090
    alertmanager: int = 9093
    postgres_exporter: int = 9187
    redis_exporter: int = 9121
    blackbox_exporter: int = 9115
    log_store: int = 5434

    s3: int = 9400  # the S3 API stand-in holding the backup bucket
    smtp: int = 8025  # the mail sink (estate/mail.py): CHATWIZARD_SMTP_PORT's default
    edge: int = 8080  # nginx caching /static/ in front of the app, as Cloudflare does


def free_port() -> int:
    """A loopback port nobody listens on now: for throwaway estates (tests, load tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
