"""Real Prometheus and Alertmanager for the alerting tests, at production's intervals, notifying a
local webhook. Prometheus loads the committed rules; Alertmanager runs the production route tree and
inhibitions with every receiver swapped for the webhook (chatwizard.estate.monitoring)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from chatwizard.estate.monitoring import MONITORING, Webhook, alertmanager_config, spawn, static
from chatwizard.estate.processes import wait_ready
from tests.conftest import free_port

# infra/components/monitoring.py (global) and k8s/base/podmonitor.yaml (the app); rule groups
# carry their own intervals (monitoring/generate.py).
PRODUCTION_INTERVAL = "10s"
APP_SCRAPE_INTERVAL = "5s"


@contextmanager
def running(state: Path, name: str, config: dict[str, Any], args: list[str]) -> Iterator[str]:
    """Write ``config`` to state/name.yml, start ``args`` + config, data and listen flags; yield its URL."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (state / f"{name}.yml").write_text(yaml.safe_dump(config))
    _, stop = spawn(name, [*args, f"--config.file={state / f'{name}.yml'}", f"--web.listen-address=127.0.0.1:{port}"],
                    state / f"{name}.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop()


def alertmanager(state: Path, webhook: Webhook) -> AbstractContextManager[str]:
    return running(state, "alertmanager", alertmanager_config(webhook.url),
                   ["prometheus-alertmanager", f"--storage.path={state / 'data'}", "--cluster.listen-address="])


def prometheus(state: Path, app_target: str, alertmanager_url: str) -> AbstractContextManager[str]:
    """Scrapes ``app_target`` as the app's job and evaluates every committed rule file."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": PRODUCTION_INTERVAL, "evaluation_interval": PRODUCTION_INTERVAL},
        "rule_files": [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": static(alertmanager_url.split("//")[1])}]},
        "scrape_configs": [{"job_name": "chatwizard", "scrape_interval": APP_SCRAPE_INTERVAL,
                            "static_configs": static(app_target)}],
    }
    return running(state, "prometheus", config, ["prometheus", f"--storage.tsdb.path={state / 'data'}"])


@contextmanager
def alerting(state: Path, app_target: str, webhook: Webhook) -> Iterator[str]:
    """Alertmanager and a Prometheus scraping ``app_target``; yields Prometheus's URL."""
    with ExitStack() as stack:
        am = stack.enter_context(alertmanager(state / "alertmanager", webhook))
        yield stack.enter_context(prometheus(state / "prometheus", app_target, am))
