"""Real faults, real Prometheus and Alertmanager: each critical alert reaches the webhook in < 60 s.

Prometheus scrapes the running app and evaluates the committed rules; Alertmanager routes with the
production route tree (receivers swapped for a local webhook). Three faults, one after another:
the Postgres primary stops; the LLM becomes slow enough to push p95 past 5 s; a broken table makes
search fail with 5xx. Each prints its measured fault-to-notification time.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from chatwizard.estate.monitoring import Targets, start_monitoring
from chatwizard.estate.ports import EstatePorts
from tests.conftest import AppServer, Databases, free_port

DETECTION_BUDGET_S = 60


class Webhook(BaseHTTPRequestHandler):
    received: list[tuple[float, dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Webhook.received.append((time.monotonic(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def first_firing(alertname: str, since: float) -> float | None:
    for at, body in Webhook.received:
        if at >= since and body["status"] == "firing" and any(
                a["labels"]["alertname"] == alertname and a["labels"]["severity"] == "critical"
                for a in body["alerts"]):
            return at
    return None


async def wait_for_notification(alertname: str, fault_at: float) -> float:
    while time.monotonic() - fault_at < DETECTION_BUDGET_S + 30:
        arrived = first_firing(alertname, fault_at)
        if arrived is not None:
            elapsed = arrived - fault_at
            print(f"\n{alertname}: fault to notification {elapsed:.1f} s")
            return elapsed
        await asyncio.sleep(0.5)
    raise AssertionError(f"{alertname} never reached the webhook")


@pytest.fixture
def monitoring(app_server: AppServer, databases: Databases, redis_node, tmp_path, make_user) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Webhook.received = []
    ports = EstatePorts(prometheus=free_port(), alertmanager=free_port(), postgres_exporter=free_port(),
                        redis_exporter=free_port(), blackbox_exporter=free_port())
    probe_user = asyncio.run(make_user("pro"))
    targets = Targets(app_server.metrics_url.split("/")[2], app_server.base_url, databases.primary.dsn,
                      f"127.0.0.1:{redis_node.port}", probe_user.key,
                      webhook_url=f"http://127.0.0.1:{server.server_address[1]}/alerts",
                      redis_password=redis_node.password)
    stops = start_monitoring(tmp_path / "monitoring", ports, targets)
    yield
    for _, stop in stops:
        stop()
    server.shutdown()


async def keep_busy(request, stop: asyncio.Event, concurrency: int = 8) -> None:
    async def loop() -> None:
        while not stop.is_set():
            await request()

    await asyncio.gather(*(loop() for _ in range(concurrency)))


def wait_ready(app_server: AppServer, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{app_server.base_url}/readyz", timeout=5).json()["status"] != "ok":
        assert time.monotonic() < deadline, "the app did not recover"
        time.sleep(0.5)


async def test_critical_alerts_reach_the_webhook_within_a_minute(monitoring, app_server: AppServer,
                                                                 databases: Databases, fake_llm, make_user):
    user = await make_user("pro")
    await asyncio.sleep(12)  # two scrapes of a healthy estate first

    # 1. The Postgres primary stops.
    fault_at = time.monotonic()
    databases.primary.stop("immediate")
    try:
        elapsed = await wait_for_notification("ChatWizardDatabaseConnectionFailures", fault_at)
    finally:
        databases.primary.start()
    assert elapsed < DETECTION_BUDGET_S
    wait_ready(app_server)

    async with app_server.client(user.key, timeout=60) as client:
        # 2. The LLM slows down: every fresh answer takes ~6 s, so p95 passes 5 s.
        fake_llm.configure(latency_mode="fixed", ttft_median_s=4.5, ttft_p95_s=4.5)
        stop = asyncio.Event()

        async def chat() -> None:
            await client.post("/v1/chat", json={"question": f"How do I build level {uuid.uuid4().hex}?"})

        traffic = asyncio.create_task(keep_busy(chat, stop))
        fault_at = time.monotonic()
        try:
            elapsed = await wait_for_notification("ChatWizardHighLatency", fault_at)
        finally:
            stop.set()
            await traffic
            fake_llm.configure(latency_mode="none", ttft_median_s=0.4, ttft_p95_s=1.0)
        assert elapsed < DETECTION_BUDGET_S

        # 3. A broken release renames a table: searches fail with 500.
        stop = asyncio.Event()

        async def search() -> None:
            await client.get("/v1/videos/search", params={"q": f"unity {uuid.uuid4().hex}"})

        databases.primary.psql("ALTER TABLE videos RENAME TO videos_broken")
        fault_at = time.monotonic()
        traffic = asyncio.create_task(keep_busy(search, stop, concurrency=4))
        try:
            elapsed = await wait_for_notification("ChatWizardHighErrorRate", fault_at)
        finally:
            stop.set()
            await traffic
            databases.primary.psql("ALTER TABLE videos_broken RENAME TO videos")
        assert elapsed < DETECTION_BUDGET_S
