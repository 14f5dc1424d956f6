"""Prometheus, Alertmanager and the exporters for the local estate and the alert-firing tests.

Prometheus evaluates the committed rules (monitoring/rules/) every 5 s; Alertmanager runs the
production route tree and inhibitions (monitoring/alertmanager/alertmanager.yml) with every receiver
swapped for one local webhook, so routing is tested as it is in production.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from chatwizard.estate.ports import EstatePorts
from chatwizard.estate.processes import stop_process, wait_ready

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
SCRAPE_INTERVAL = "5s"
Stop = Callable[[], None]


@dataclass(frozen=True)
class Targets:
    app_metrics: str          # host:port of the app's metrics endpoint
    app_base_url: str         # for the blackbox probes
    postgres_dsn: str
    redis_addr: str           # host:port
    probe_api_key: str        # a service key for the authenticated probe
    webhook_url: str | None   # where every notification goes; None: nowhere (UI only)
    redis_password: str


def alertmanager_config(webhook_url: str | None) -> dict[str, Any]:
    """The production config with each receiver replaced by the local webhook (same names, same routes)."""
    config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
    config["global"] = {"resolve_timeout": config["global"]["resolve_timeout"]}
    hook = [{"url": webhook_url, "send_resolved": True}] if webhook_url else None
    config["receivers"] = [{"name": r["name"], **({"webhook_configs": hook} if hook else {})}
                           for r in config["receivers"]]
    return config


def static(*targets: str, **labels: str) -> list[dict[str, Any]]:
    return [{"targets": list(targets), **({"labels": labels} if labels else {})}]


def prometheus_config(state: Path, ports: EstatePorts, targets: Targets) -> dict[str, Any]:
    key_file = state / "probe-api-key"
    key_file.touch(mode=0o600)
    key_file.write_text(targets.probe_api_key)
    local = "127.0.0.1:{}".format
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": static(local(ports.alertmanager))}]},
        "scrape_configs": [
            {"job_name": "chatwizard", "static_configs": static(targets.app_metrics)},
            {"job_name": "postgres", "static_configs": static(local(ports.postgres_exporter))},
            {"job_name": "redis", "static_configs": static(local(ports.redis_exporter))},
            {"job_name": "blackbox", "metrics_path": "/probe",
             "static_configs": static(f"{targets.app_base_url}/healthz", module="http_2xx")
             + static(f"{targets.app_base_url}/v1/me", module="http_api"),
             "relabel_configs": [
                 {"source_labels": ["__address__"], "target_label": "__param_target"},
                 {"source_labels": ["module"], "target_label": "__param_module"},
                 {"source_labels": ["__param_target"], "target_label": "instance"},
                 {"target_label": "__address__", "replacement": local(ports.blackbox_exporter)}]},
        ],
    }


def blackbox_config(state: Path) -> dict[str, Any]:
    authorised = {"authorization": {"type": "Bearer", "credentials_file": str(state / "probe-api-key")}}
    return {"modules": {
        "http_2xx": {"prober": "http", "timeout": "4s", "http": {"valid_status_codes": [200]}},
        "http_api": {"prober": "http", "timeout": "4s",
                     "http": {"valid_status_codes": [200], **authorised}},
    }}


def spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[str, Stop]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)

    return name, lambda: stop_process(process, timeout_s=15)


def start_monitoring(state: Path, ports: EstatePorts, targets: Targets) -> list[tuple[str, Stop]]:
    """Start exporters, Alertmanager and Prometheus; returns (name, stop) pairs, last started first."""
    state.mkdir(parents=True, exist_ok=True)
    files = {"prometheus.yml": prometheus_config(state, ports, targets),
             "alertmanager.yml": alertmanager_config(targets.webhook_url),
             "blackbox.yml": blackbox_config(state)}
    for name, document in files.items():
        (state / name).write_text(yaml.safe_dump(document, sort_keys=False))
    log = state / "monitoring.log"
    started = [
        # Debian's exporter (0.11) predates PostgreSQL 17's pg_stat_checkpointer: skip that collector.
        spawn("postgres exporter", ["prometheus-postgres-exporter", "--no-collector.bgwriter",
                                    f"--web.listen-address=127.0.0.1:{ports.postgres_exporter}"],
              log, env={"DATA_SOURCE_NAME": targets.postgres_dsn + "?sslmode=disable"}),
        spawn("redis exporter", ["prometheus-redis-exporter", f"--redis.addr=redis://{targets.redis_addr}",
                                 f"--web.listen-address=127.0.0.1:{ports.redis_exporter}"], log,
              env={"REDIS_PASSWORD": targets.redis_password}),
        spawn("blackbox exporter", ["prometheus-blackbox-exporter", f"--config.file={state / 'blackbox.yml'}",
                                    f"--web.listen-address=127.0.0.1:{ports.blackbox_exporter}"], log),
        spawn("alertmanager", ["prometheus-alertmanager", f"--config.file={state / 'alertmanager.yml'}",
                               f"--storage.path={state / 'alertmanager'}", "--cluster.listen-address=",
                               f"--web.listen-address=127.0.0.1:{ports.alertmanager}"], log),
        spawn("prometheus", ["prometheus", f"--config.file={state / 'prometheus.yml'}",
                             f"--storage.tsdb.path={state / 'prometheus'}", "--web.enable-lifecycle",
                             "--storage.tsdb.retention.time=35d",  # the 30-day SLO panels, as in production
                             f"--web.listen-address=127.0.0.1:{ports.prometheus}"], log),
    ]
    wait_ready(f"http://127.0.0.1:{ports.alertmanager}/-/ready")
    wait_ready(f"http://127.0.0.1:{ports.prometheus}/-/ready")
    return started[::-1]


@dataclass(frozen=True)
class Notification:
    at: float  # arrival, on the monotonic clock
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str  # firing | resolved


class Webhook:
    """Collects Alertmanager's notifications on a loopback port: the alerting tests' pager, and the game
    day's."""

    def __init__(self) -> None:
        self.received: list[Notification] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.extend(Notification(time.monotonic(), a["labels"], a.get("annotations", {}),
                                             a["status"]) for a in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def firing(self, since: float = 0.0) -> list[Notification]:
        return [n for n in self.received if n.at >= since and n.status == "firing"]

    def first_firing(self, alertname: str, since: float = 0.0) -> float | None:
        return next((n.at for n in self.firing(since) if n.labels["alertname"] == alertname), None)

    def names(self) -> set[str]:
        return {n.labels["alertname"] for n in self.firing()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
