"""Onset to page for every seed critical condition, just past its threshold, at production's intervals.

Real Prometheus with the committed rules (app scraped every 5 s, rule groups at their generated
intervals, everything else at production's 10 s) and real Alertmanager with the production route tree,
notifying a local webhook. Two estates run side by side, so the whole test takes about two minutes:

- the real app (gunicorn, real Postgres): the Postgres primary stops;
- a metric source speaking the app's metrics, whose traffic turns, at one instant, from healthy to
  6 % of requests failing, 6 % slower than 5 s (p95 ~5.8 s), 28 % cache hits and memory at 86 % of
  its limit: each just past its threshold (monitoring/config.yaml), which the real app cannot be
  steered to so exactly. It has its own Prometheus and Alertmanager: rules sum over the whole job.

Each condition's onset-to-webhook time is printed; docs/observability.md has the figures.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from chatwizard.core.metrics import LATENCY_BUCKETS
from monitoring.generate import CONFIG
from tests.conftest import AppServer, Databases, free_port
from tests.monitoring.harness import Webhook, alerting

DETECTION_BUDGET_S = 60
BASELINE_S = 45  # healthy traffic first: the 30 s windows hold only normal requests at onset
REQUESTS_PER_S, LOOKUPS_PER_S, PROBES_PER_S = 50, 25, 0.8
MEMORY_LIMIT = 2_000_000_000
# Just past each seed threshold.
ERROR_SHARE = CONFIG["error_rate"]["critical_ratio"] + 0.01                # 6 %
SLOW_SHARE = 1 - 0.95 + 0.01                                               # 6 % slower than 5 s
SLOW_S = CONFIG["latency"]["critical_p95_s"] + 1
HIT_SHARE = CONFIG["cache"]["critical_hit_ratio"] - 0.02                   # 28 %
MEMORY_SHARE = CONFIG["memory"]["critical_ratio"] + 0.01                   # 86 %
HEALTHY_HIT_SHARE, HEALTHY_MEMORY_SHARE = 0.70, 0.50
SYNTHETIC = ("ChatWizardHighErrorRate", "ChatWizardHighLatency", "ChatWizardCacheHitRateCritical",
             "ChatWizardMemoryHigh")


class SickApp:
    """The app's request, latency, cache and memory metrics, advanced once a second."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("chatwizard_http_requests_total", "", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("chatwizard_http_request_duration_seconds", "", ["route", "method"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.cache = Counter("chatwizard_cache_requests_total", "", ["cache", "result"], registry=self.registry)
        self.rss = Gauge("chatwizard_memory_rss_bytes", "", registry=self.registry)
        Gauge("chatwizard_memory_limit_bytes", "", registry=self.registry).set(MEMORY_LIMIT)
        self.faulty = False
        self.stopped = threading.Event()
        port = free_port()
        self.server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self.target = f"127.0.0.1:{port}"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.wait(1.0):
            self.tick()

    def tick(self) -> None:
        failed = round(REQUESTS_PER_S * ERROR_SHARE) if self.faulty else 0
        slow = round(REQUESTS_PER_S * SLOW_SHARE) if self.faulty else 0
        self.requests.labels("/v1/chat", "POST", "500").inc(failed)
        self.requests.labels("/v1/chat", "POST", "200").inc(REQUESTS_PER_S - failed)
        self.requests.labels("/healthz", "GET", "200").inc(PROBES_PER_S)
        for i in range(REQUESTS_PER_S):
            self.latency.labels("/v1/chat", "POST").observe(SLOW_S if i < slow else 0.2)
        hits = LOOKUPS_PER_S * (HIT_SHARE if self.faulty else HEALTHY_HIT_SHARE)
        self.cache.labels("exact", "hit").inc(hits * 0.7)
        self.cache.labels("semantic", "hit").inc(hits * 0.3)
        self.cache.labels("exact", "miss").inc(LOOKUPS_PER_S - hits * 0.7)
        self.rss.set(MEMORY_LIMIT * (MEMORY_SHARE if self.faulty else HEALTHY_MEMORY_SHARE))

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()


@pytest.fixture
def sick_app() -> Iterator[SickApp]:
    app = SickApp()
    yield app
    app.stop()


async def onset_to_page(webhook: Webhook, alertnames: tuple[str, ...], onset: float) -> dict[str, float]:
    deadline = onset + DETECTION_BUDGET_S + 30
    while time.monotonic() < deadline:
        arrived = {name: webhook.first_firing(name, onset) for name in alertnames}
        if all(at is not None for at in arrived.values()):
            return {name: at - onset for name, at in arrived.items() if at is not None}
        await asyncio.sleep(0.5)
    arrived = {name: webhook.first_firing(name, onset) for name in alertnames}
    raise AssertionError("never reached the webhook: " + ", ".join(
        f"{name} {'never' if at is None else f'{at - onset:.1f} s'}" for name, at in arrived.items()))


def wait_ready(app_server: AppServer, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{app_server.base_url}/readyz", timeout=5).json()["status"] != "ok":
        assert time.monotonic() < deadline, "the app did not recover"
        time.sleep(0.5)


async def test_every_seed_critical_pages_within_a_minute_of_onset(app_server: AppServer, databases: Databases,
                                                                  sick_app: SickApp, tmp_path):
    webhook = Webhook()
    with ExitStack() as stack:
        stack.enter_context(alerting(tmp_path / "synthetic", sick_app.target, webhook))
        stack.enter_context(alerting(tmp_path / "app", app_server.metrics_url.split("/")[2], webhook))
        await asyncio.sleep(BASELINE_S)
        assert webhook.names() <= {"Watchdog"}, f"a healthy estate paged: {webhook.names()}"

        onset = time.monotonic()
        sick_app.faulty = True
        databases.primary.stop("immediate")
        try:
            measured = await onset_to_page(webhook, (*SYNTHETIC, "ChatWizardDatabaseConnectionFailures"), onset)
        finally:
            databases.primary.start()
        wait_ready(app_server)
    print("\nonset to webhook: " + ", ".join(f"{name} {s:.1f} s" for name, s in sorted(measured.items())))
    assert max(measured.values()) < DETECTION_BUDGET_S, measured
