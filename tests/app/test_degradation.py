"""Reads on the replica, writes on the primary, and graceful degradation when parts fail."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.conftest import AppServer, Databases, metric_value


def reads(server: AppServer, node: str) -> float:
    return metric_value(server.metrics(), "chatwizard_db_reads_total", node=node)


def wait_until(check, timeout_s: float = 15, interval_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise AssertionError("condition not reached in time")


def ready(server: AppServer) -> dict:
    return httpx.get(f"{server.base_url}/readyz", timeout=10).json()


async def test_reads_use_the_replica_and_writes_the_primary(app_server: AppServer, databases: Databases,
                                                             make_user):
    user = await make_user()
    replica_before, primary_before = reads(app_server, "replica"), reads(app_server, "primary")
    async with app_server.client(user.key) as client:
        for query in ("lua tables", "unity physics", "blender rig"):
            assert (await client.get("/v1/videos/search", params={"q": query})).status_code == 200
        video_id = (await client.get("/v1/videos/search", params={"q": "godot"})).json()["videos"][0]["id"]
        event = {"event_id": str(uuid.uuid4()), "video_id": video_id, "kind": "click"}
        assert (await client.post("/v1/progress/events", json=event)).status_code == 201
    assert reads(app_server, "replica") >= replica_before + 4
    # Only the key lookup (once, then cached in Redis) reads the primary; every search was on the replica.
    assert reads(app_server, "primary") <= primary_before + 1
    # The write landed on the primary and streamed to the replica.
    databases.wait_replica_caught_up()
    sql = f"SELECT clicks FROM video_progress WHERE user_id = '{user.id}' AND video_id = '{video_id}'"
    assert databases.primary.psql(sql) == "1"
    assert databases.replica.psql(sql) == "1"


async def test_reads_fall_back_to_the_primary_while_the_replica_is_down(app_server: AppServer,
                                                                        databases: Databases, make_user):
    user = await make_user()
    databases.replica.stop("immediate")
    try:
        primary_before = reads(app_server, "primary")
        async with app_server.client(user.key) as client:
            for i in range(6):  # both workers: every read succeeds, the first ones by retrying on the primary
                response = await client.get("/v1/videos/search", params={"q": f"python lists {i}"})
                assert response.status_code == 200, response.text
        assert reads(app_server, "primary") >= primary_before + 6
        status = ready(app_server)
        assert status["status"] == "degraded"
        assert status["checks"]["replica"]["status"] == "down"
    finally:
        databases.replica.start()
    wait_until(lambda: ready(app_server)["checks"]["replica"]["status"] == "ok")


async def test_chat_keeps_answering_without_redis(app_server: AppServer, redis_node, make_user):
    user = await make_user()
    redis_node.stop()
    try:
        async with app_server.client(user.key) as client:
            for _ in range(2):
                response = await client.post("/v1/chat", json={"question": "How do I rig a character in Blender?"})
                assert response.status_code == 200, response.text
                assert response.headers["X-Cache"] == "miss"  # no cache to hit, but still an answer
                assert len(response.json()["videos"]) >= 3
        status = ready(app_server)
        assert status["status"] == "degraded"
        assert status["checks"]["redis"]["status"] == "down"
        assert metric_value(app_server.metrics(), "chatwizard_redis_fallback_active") >= 1
    finally:
        redis_node.start()
    wait_until(lambda: ready(app_server)["checks"]["redis"]["status"] == "ok")


async def test_chat_degrades_to_a_composed_answer_when_the_llm_fails(app_server: AppServer, fake_llm, make_user):
    user = await make_user()
    fake_llm.configure(error_rate_500=1.0)
    try:
        async with app_server.client(user.key) as client:
            response = await client.post("/v1/chat", json={"question": "How do I make a main menu in Unity?"})
    finally:
        fake_llm.configure(error_rate_500=0.0)
    assert response.status_code == 200
    body = response.json()
    assert body["answer_source"] == "fallback"
    assert "no language model was used" in body["answer"]
    assert len(body["videos"]) >= 3
    assert metric_value(app_server.metrics(), "chatwizard_llm_errors_total", operation="chat") >= 1
