"""gunicorn settings, from the environment via Settings, plus Prometheus multiprocess wiring.

The master serves /metrics on the internal metrics port, aggregating every worker's samples from
PROMETHEUS_MULTIPROC_DIR; the directory is wiped at start and dead workers are marked, so counters
are neither lost nor double counted when a worker is replaced.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from uvicorn.workers import UvicornWorker

from chatwizard.core.settings import get_settings


class AppWorker(UvicornWorker):
    """uvicorn under gunicorn, without the `Server: uvicorn` header (it tells scanners what to try)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "server_header": False}


settings = get_settings()
bind = [f"{settings.host}:{settings.port}"]
workers = settings.workers
worker_class = f"{__name__}.AppWorker"
# X-Forwarded-For/-Proto are believed only from these proxies (none by default); uvicorn's worker
# reads this setting, so the client address the app sees (audit trail, per-address limits) is the peer's.
forwarded_allow_ips = ",".join(settings.forwarded_allow_ips)
graceful_timeout = 25  # under the pod's terminationGracePeriodSeconds so streams can finish
timeout = 60
keepalive = 75  # longer than load balancers' idle timeout, so they close first
# A safety net against slow leaks only; the leak test bounds growth without it (docs/performance.md).
max_requests = settings.max_requests
max_requests_jitter = max_requests // 10
accesslog = None
errorlog = "-"
loglevel = settings.log_level.lower()
# gunicorn's and uvicorn's own lines (boot, worker start and exit, timeouts) as the app's JSON lines,
# on the app's stream: uvicorn's worker reuses the gunicorn.error handlers, so they go there directly.
logconfig_dict = {
    "formatters": {"json": {"()": "chatwizard.core.logs.stdlib_formatter"}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                          "stream": "ext://sys.stdout"}},
    "root": {"level": loglevel.upper(), "handlers": ["json"]},
    "loggers": {"gunicorn.error": {"level": loglevel.upper(), "handlers": ["json"], "propagate": False},
                "gunicorn.access": {"handlers": [], "propagate": False}},
}


def on_starting(server: Any) -> None:
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


def when_ready(server: Any) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    from chatwizard.core.process_metrics import AppProcessCollector, memory_limit_bytes

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(AppProcessCollector(memory_limit_bytes(settings.memory_limit_bytes)))
    start_http_server(settings.metrics_port, addr=settings.host, registry=registry)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
