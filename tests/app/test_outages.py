"""Outages under mixed traffic (writes, searches, cached and fresh chats) against the app under
gunicorn, each for 6 s: a hung Postgres node (its processes SIGSTOPped: not dead, not answering),
Redis down, the LLM failing. Before the node health probe, a hung replica held every read for the
whole hang and a hung primary held everything, with no 503.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from chatwizard.estate.drills import (
    CLIENTS,
    FaultResult,
    hung_node_drill,
    llm_outage_drill,
    redis_outage_drill,
)
from tests.conftest import AppServer, Databases, metric_value

SLOWEST_S = 3.0  # no request waits longer than this on a hung node


async def _setup(app_server: AppServer, make_user) -> tuple[list[str], str]:
    keys = [(await make_user("pro")).key for _ in range(CLIENTS)]
    async with app_server.client(keys[0]) as client:
        video_id = (await client.get("/v1/videos/search", params={"q": "godot"})).json()["videos"][0]["id"]
    return keys, video_id


async def acknowledged_missing(databases: Databases, event_ids: list[str]) -> int:
    conn = await asyncpg.connect(databases.primary.dsn)
    try:
        found = await conn.fetchval("SELECT count(*) FROM progress_events WHERE event_id = ANY($1::uuid[])",
                                    event_ids)
    finally:
        await conn.close()
    return len(event_ids) - found


def assert_every_request_answered(result: FaultResult) -> None:
    figures = result.figures()
    for kind, ok in (("search", 200), ("write", 201), ("chat", 200)):
        assert set(result.during(kind)) == {ok}, figures
    assert not result.traffic.server_errors(), figures


async def test_a_hung_replica_costs_reads_at_most_a_moment(app_server: AppServer, databases: Databases,
                                                           make_user):
    keys, video_id = await _setup(app_server, make_user)
    result = await hung_node_drill(app_server.base_url, keys, video_id, databases.replica, "replica")
    assert result.waited() < SLOWEST_S, result.figures()
    # Reads moved to the primary: every request succeeded, none had to be retried by the client.
    for kind, ok in (("search", 200), ("write", 201), ("chat", 200)):
        assert set(result.during(kind)) == {ok}, result.figures()
    assert not result.traffic.server_errors()
    assert await acknowledged_missing(databases, result.traffic.acknowledged) == 0


async def test_a_hung_primary_fails_writes_fast_and_keeps_reads_and_chats(app_server: AppServer,
                                                                         databases: Databases, make_user):
    keys, video_id = await _setup(app_server, make_user)
    result = await hung_node_drill(app_server.base_url, keys, video_id, databases.primary, "primary")
    figures = result.figures()
    assert result.waited() < SLOWEST_S, figures
    # Writes fail fast with 503 + Retry-After (never a hang or a bare 5xx); searches keep being served by
    # the replica; chats keep answering, marked unsaved while their history cannot be written.
    assert set(result.during("write")) <= {201, 503} and result.during("write").get(503), figures
    assert set(result.during("search")) == {200}, figures
    assert set(result.during("chat")) == {200} and figures["chats_answered_unsaved"] > 0, figures
    assert not result.traffic.server_errors(), figures
    # Once the primary answers again, writes succeed again, and every acknowledged write is stored.
    after = result.traffic.of("write", since=result.ended + 2.5)
    assert after and {s.status for s in after} == {201}, figures
    assert await acknowledged_missing(databases, result.traffic.acknowledged) == 0


async def test_redis_down_costs_no_request(app_server: AppServer, databases: Databases, redis_node, make_user):
    keys, video_id = await _setup(app_server, make_user)
    result = await redis_outage_drill(app_server.base_url, keys, video_id, redis_node)
    assert_every_request_answered(result)
    assert await acknowledged_missing(databases, result.traffic.acknowledged) == 0


async def test_an_llm_outage_costs_no_request(app_server: AppServer, fake_llm, make_user):
    keys, video_id = await _setup(app_server, make_user)
    result = await llm_outage_drill(app_server.base_url, keys, video_id, fake_llm)
    assert_every_request_answered(result)
    # Once the provider answers again, every worker's breaker tries it by itself after its reset time (30 s)
    # and closes, with or without questions; then chats recommend videos again.
    deadline = time.monotonic() + 90
    while metric_value(app_server.metrics(), "chatwizard_llm_circuit_open") > 0:
        assert time.monotonic() < deadline, "a worker's LLM breaker never closed after the outage"
        await asyncio.sleep(1)
    async with app_server.client(keys[0]) as client:
        chat = await client.post("/v1/chat", json={"question": f"loops in python {uuid.uuid4().hex}"})
    assert chat.json()["videos"], chat.text

