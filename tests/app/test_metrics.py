"""Prometheus metrics under gunicorn with several workers: totals add up across workers and survive
a worker being killed and replaced (multiprocess mode, dead workers marked, nothing double counted);
a worker killed during an outage takes its "down" with it; failure counters exist before the first
failure."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import psutil

from tests.conftest import AppServer, Databases, metric_value


def health_count(server: AppServer) -> float:
    return metric_value(server.metrics(), "chatwizard_http_requests_total", route="/healthz", status="200")


async def hit_health(server: AppServer, n: int) -> None:
    # Fresh connections spread requests over both workers.
    async with httpx.AsyncClient(base_url=server.base_url, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        responses = await asyncio.gather(*(c.get("/healthz") for _ in range(n)))
    assert all(r.status_code == 200 for r in responses)


def workers(server: AppServer) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children()


async def kill_a_worker(server: AppServer) -> None:
    """SIGKILL one worker and wait until gunicorn has replaced it."""
    victim = workers(server)[0]
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [w for w in workers(server) if w.pid != victim.pid and w.status() != psutil.STATUS_ZOMBIE]
        if len(alive) == 2:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("gunicorn did not replace the killed worker")


async def test_totals_are_exact_across_workers_and_a_killed_worker(app_server: AppServer):
    assert len(workers(app_server)) == 2
    before = health_count(app_server)
    await hit_health(app_server, 300)
    assert health_count(app_server) == before + 300

    await kill_a_worker(app_server)
    assert health_count(app_server) == before + 300, "a dead worker's requests were lost or counted twice"
    await hit_health(app_server, 100)
    assert health_count(app_server) == before + 400



async def until(check, what: str, timeout_s: float = 30, poke=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        if poke is not None:
            await poke()
        await asyncio.sleep(0.5)


async def test_gauges_recover_when_a_worker_dies_during_an_outage(app_server: AppServer, databases: Databases,
                                                                 redis_node, fake_llm, make_user):
    """Both workers see the replica, Redis and the LLM down; one is killed; once all are back, every state
    gauge reads healthy again. With min/max modes the dead worker's last "down" would stay until a restart."""
    user = await make_user("pro")
    asked = iter(range(10**6))

    async def requests() -> None:  # authenticated: the rate limiter needs Redis; fresh connections: both workers
        async with httpx.AsyncClient(base_url=app_server.base_url, headers={"Authorization": f"Bearer {user.key}"},
                                     limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as client:
            await asyncio.gather(*(client.get("/v1/me") for _ in range(20)))

    async def chats() -> None:  # questions never asked before: each one reaches the LLM (or its breaker)
        async with httpx.AsyncClient(base_url=app_server.base_url, headers={"Authorization": f"Bearer {user.key}"},
                                     limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as client:
            await asyncio.gather(*(client.post("/v1/chat", json={"question": f"gauge check {next(asked)}: "
                                                                            "how do loops work in Python?"})
                                   for _ in range(8)))

    def gauge(name: str, **labels: str) -> float:
        return metric_value(app_server.metrics(), name, **labels)

    databases.replica.stop("immediate")
    redis_node.stop()
    fake_llm.configure(error_rate_500=1.0)
    try:
        await until(lambda: gauge("chatwizard_db_up", node="replica") == 0
                    and gauge("chatwizard_redis_fallback_active") == 1, "the outage never showed", poke=requests)
        await until(lambda: gauge("chatwizard_llm_circuit_open") == 1, "the LLM breaker never opened", poke=chats,
                    timeout_s=60)
        await requests()
        await chats()
        await asyncio.sleep(3)  # a replica check in every worker, so the victim has reported "down" too
        await kill_a_worker(app_server)
    finally:
        fake_llm.configure(error_rate_500=0.0)
        redis_node.start()
        databases.replica.start()
    await until(lambda: gauge("chatwizard_db_up", node="replica") == 1, "chatwizard_db_up{node=replica} stuck at 0",
                timeout_s=60)
    await until(lambda: gauge("chatwizard_redis_fallback_active") == 0, "chatwizard_redis_fallback_active stuck at 1",
                timeout_s=60, poke=requests)
    # The surviving worker's breaker tries the provider by itself after its reset time (30 s) and closes,
    # with no question to carry the trial: an idle worker must not keep the LLM alert firing.
    await until(lambda: gauge("chatwizard_llm_circuit_open") == 0, "chatwizard_llm_circuit_open stuck at 1",
                timeout_s=90)
    assert gauge("chatwizard_db_up", node="primary") == 1


def test_failure_counters_exist_at_zero_before_the_first_failure(app_server: AppServer):
    """increase() cannot see a series whose first sample is 1: the first failure would page nobody."""
    text = app_server.metrics()
    for name, labels in [("chatwizard_db_connection_failures_total", {"node": "primary"}),
                         ("chatwizard_db_connection_failures_total", {"node": "replica"}),
                         ("chatwizard_http_requests_total", {"route": "/v1/chat", "method": "POST", "status": "500"}),
                         ("chatwizard_http_requests_total", {"route": "/v1/chat", "method": "POST", "status": "503"}),
                         ("chatwizard_cache_requests_total", {"cache": "semantic", "result": "hit"})]:
        label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        assert any(line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
                   for line in text.splitlines()), f"{name}{{{label_text}}} is not exported before its first event"
