"""Rate limits: 100 requests/hour for a free user over all their keys and channels (REST, SSE, every
question on a WebSocket), more for pro, per address on auth failures and the public feed, and still
enforced (per process) with Redis down. Users under their limit never see 429."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from chatwizard.accounts import service as accounts
from chatwizard.estate.processes import stop_process
from tests.app.test_keys import ask
from tests.conftest import AppServer, app_env, metric_value, start_server


async def get_me(client: httpx.AsyncClient, n: int) -> list[httpx.Response]:
    return [await client.get("/v1/me") for _ in range(n)]


async def test_free_user_gets_429_on_the_101st_request_and_pro_does_not(app_server: AppServer, make_user):
    free, pro = await make_user("free"), await make_user("pro")
    async with app_server.client(free.key) as client:
        allowed = await get_me(client, 100)
        refused = await client.get("/v1/me")
    assert [r.status_code for r in allowed] == [200] * 100, "a user under the limit was throttled"
    assert allowed[0].headers["RateLimit-Limit"] == "100"
    assert allowed[-1].headers["RateLimit-Remaining"] == "0"
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "100 per 1 hour" in refused.json()["detail"]
    async with app_server.client(pro.key) as client:
        assert {r.status_code for r in await get_me(client, 101)} == {200}
    assert metric_value(app_server.metrics(), "chatwizard_rate_limited_total", scope="user") >= 1


@pytest.fixture
def strict_server(databases, redis_node, fake_llm, catalogue, tmp_path) -> Iterator[AppServer]:
    """One worker and tight limits, so per-process behaviour is exact."""
    env = app_env(databases, redis_node, fake_llm, tmp_path, CHATWIZARD_WORKERS="1",
                  CHATWIZARD_RATE_LIMIT_FREE="5/minute", CHATWIZARD_RATE_LIMIT_AUTH_FAILURES="3/minute",
                  CHATWIZARD_RATE_LIMIT_ANONYMOUS="4/minute")
    server = start_server(env, tmp_path)
    yield server
    stop_process(server.process)


async def chat_rest(server: AppServer, key: str) -> int:
    async with server.client(key) as client:
        return (await client.post("/v1/chat", json={"question": "How do I animate a sprite in Godot?"})).status_code


async def chat_sse(server: AppServer, key: str) -> int:
    async with server.client(key) as client, client.stream(
            "POST", "/v1/chat/stream", json={"question": "How do I animate a sprite in Unity?"}) as response:
        await response.aread()
        return response.status_code


async def test_every_question_counts_for_its_user_on_every_channel_and_every_key(
        strict_server: AppServer, db, make_user):
    """Free: 5/minute here. Three keys of one user, three channels: the fifth question is the last."""
    user = await make_user("free")
    sse_key, ws_key = [(await accounts.create_key(db, user.id, name))[0] for name in ("sse", "ws")]
    assert [await chat_rest(strict_server, user.key) for _ in range(2)] == [200, 200]
    assert await chat_sse(strict_server, sse_key) == 200
    url = strict_server.base_url.replace("http", "ws") + "/v1/chat/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {ws_key}"}) as ws:  # counts: 4
        answered = await ask(ws, "How do I script a door in Roblox?")  # 5
        refused = [await ask(ws, f"And question {n}?") for n in range(3)]
    assert answered[-1]["type"] == "done"
    assert {(f[-1]["type"], f[-1]["status"]) for f in refused} == {("error", 429)}
    assert 0 < refused[0][-1]["retry_after"] <= 60 and "5 per 1 minute" in refused[0][-1]["detail"]
    assert await chat_rest(strict_server, user.key) == 429
    assert await chat_sse(strict_server, sse_key) == 429


async def test_limits_still_apply_per_process_without_redis(strict_server: AppServer, redis_node, make_user):
    user = await make_user("free")
    redis_node.stop()
    try:
        async with strict_server.client(user.key) as client:
            statuses = [r.status_code for r in await get_me(client, 6)]
    finally:
        redis_node.start()
    assert statuses == [200] * 5 + [429]


async def test_repeated_bad_keys_from_one_address_get_429_whatever_x_forwarded_for_says(strict_server: AppServer):
    """No proxy is configured, so a client naming a new address in each request is still one address."""
    async with strict_server.client("cwk_" + "A" * 36) as client:
        statuses = [(await client.get("/v1/me", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
                    for i in range(4)]
    assert statuses == [401, 401, 401, 429]


async def test_public_feed_is_limited_per_address_but_health_is_not(strict_server: AppServer):
    async with httpx.AsyncClient(base_url=strict_server.base_url) as client:
        feed = [(await client.get("/calendar/" + "A" * 43 + ".ics")).status_code for _ in range(5)]
        health = await asyncio.gather(*(client.get("/healthz") for _ in range(20)))
    assert feed == [404] * 4 + [429]
    assert {r.status_code for r in health} == {200}
