"""Prometheus metrics under gunicorn with several workers: totals add up across workers and survive
a worker being killed and replaced (multiprocess mode, dead workers marked, nothing double counted)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import psutil

from tests.conftest import AppServer, metric_value


def health_count(server: AppServer) -> float:
    return metric_value(server.metrics(), "chatwizard_http_requests_total", route="/healthz", status="200")


async def hit_health(server: AppServer, n: int) -> None:
    # Fresh connections spread requests over both workers.
    async with httpx.AsyncClient(base_url=server.base_url, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        responses = await asyncio.gather(*(c.get("/healthz") for _ in range(n)))
    assert all(r.status_code == 200 for r in responses)


def workers(server: AppServer) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children()


async def test_totals_are_exact_across_workers_and_a_killed_worker(app_server: AppServer):
    assert len(workers(app_server)) == 2
    before = health_count(app_server)
    await hit_health(app_server, 300)
    assert health_count(app_server) == before + 300

    victim = workers(app_server)[0]
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [w for w in workers(app_server) if w.pid != victim.pid and w.status() != psutil.STATUS_ZOMBIE]
        if len(alive) == 2:
            break
        await asyncio.sleep(0.2)
    assert health_count(app_server) == before + 300, "a dead worker's requests were lost or counted twice"
    await hit_health(app_server, 100)
    assert health_count(app_server) == before + 400

