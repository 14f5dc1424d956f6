"""Chat over JSON, SSE and WebSocket: grounded answers, caches, conversations, degradation."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

from tests.conftest import AppServer, metric_value

QUESTION = "How do I script a door that opens in Roblox Studio?"


async def test_chat_answers_with_videos_then_serves_repeat_from_cache(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        misses = metric_value(app_server.metrics(), "chatwizard_cache_requests_total", cache="exact",
                              result="miss")
        first = await client.post("/v1/chat", json={"question": "How can I make a leaderboard in Roblox?"})
        # One exact lookup per chat, so hits / exact lookups (the hit-rate rules) is hits per chat.
        assert metric_value(app_server.metrics(), "chatwizard_cache_requests_total", cache="exact",
                            result="miss") == misses + 1
        before = metric_value(app_server.metrics(), "chatwizard_cache_requests_total", cache="exact",
                              result="hit")
        again = await client.post("/v1/chat", json={"question": "how can i make a LEADERBOARD in roblox"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert first.headers["X-Cache"] == "miss"
    assert body["answer_source"] == "openai" and body["answer"]
    assert 3 <= len(body["videos"]) <= 5
    video = body["videos"][0]
    assert {"id", "title", "channel", "url", "thumbnail_url", "duration_s", "reason"} <= video.keys()
    assert "leaderboard" in " ".join(v["title"].lower() for v in body["videos"])
    assert again.headers["X-Cache"] == "exact" and again.json()["cache"] == "exact"
    assert again.json()["answer"] == body["answer"]
    after = metric_value(app_server.metrics(), "chatwizard_cache_requests_total", cache="exact", result="hit")
    assert after == before + 1


async def test_llm_calls_add_no_log_lines_of_their_own(app_server: AppServer, make_user):
    """A miss calls the embedding and chat APIs; the request's own log line is the record of it."""
    user = await make_user()
    async with app_server.client(user.key) as client:
        response = await client.post("/v1/chat", json={"question": f"Minimap shaders in Godot {uuid.uuid4()}?"})
    assert response.headers["X-Cache"] == "miss"
    assert "HTTP Request:" not in app_server.log()


async def test_paraphrase_is_served_by_the_semantic_cache(app_server: AppServer, make_user):
    """Once as many learners as the semantic cache needs (3) have asked the same words."""
    for user in [await make_user() for _ in range(3)]:
        async with app_server.client(user.key) as client:
            await client.post("/v1/chat", json={"question": "How do I save player data with DataStores in Roblox?"})
    async with app_server.client(user.key) as client:
        paraphrase = await client.post(
            "/v1/chat", json={"question": "how can I save the player's data using datastores in roblox"})
    assert paraphrase.headers["X-Cache"] == "semantic", paraphrase.json()


async def test_conversation_is_stored_and_continued_only_by_its_owner(app_server: AppServer, make_user):
    owner, other = await make_user(), await make_user()
    async with app_server.client(owner.key) as client:
        first = (await client.post("/v1/chat", json={"question": QUESTION})).json()
        follow = await client.post("/v1/chat", json={"question": "And how do I add a sound when it opens?",
                                                      "conversation_id": first["conversation_id"]})
        assert follow.status_code == 200
        stored = (await client.get(f"/v1/conversations/{first['conversation_id']}")).json()
        listed = (await client.get("/v1/conversations")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert stored["messages"][0]["content"] == QUESTION
    assert [c["id"] for c in listed] == [first["conversation_id"]]
    async with app_server.client(other.key) as client:
        assert (await client.get(f"/v1/conversations/{first['conversation_id']}")).status_code == 404
        hijack = await client.post("/v1/chat", json={"question": "hi",
                                                      "conversation_id": first["conversation_id"]})
        assert hijack.status_code == 404


async def test_sse_stream_delivers_tokens_incrementally(app_server: AppServer, make_user):
    user = await make_user()
    events: list[tuple[str, dict]] = []
    async with app_server.client(user.key) as client, aconnect_sse(
        client, "POST", "/v1/chat/stream", json={"question": "How do I use signals in Godot games?"}
    ) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            events.append((sse.event, json.loads(sse.data)))
    kinds = [kind for kind, _ in events]
    assert kinds.count("token") > 1, "the answer arrived in one piece, not streamed"
    assert kinds[-2:] == ["videos", "done"]
    assert len(events[-2][1]) >= 3
    assert events[-1][1]["conversation_id"]


async def test_websocket_streams_tokens_and_keeps_the_socket_for_more_turns(app_server: AppServer, make_user):
    user = await make_user()
    url = app_server.base_url.replace("http", "ws") + "/v1/chat/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {user.key}"}) as ws:
        for question in ("How do I make a 2D platformer in Unity?", "{not json"):
            await ws.send(question if question.startswith("{") else json.dumps({"question": question}))
            frames = []
            while True:
                frame = json.loads(await ws.recv())
                frames.append(frame)
                if frame["type"] in ("done", "error"):
                    break
            if question.startswith("{"):
                assert frames[-1]["type"] == "error" and frames[-1]["status"] == 422
            else:
                assert sum(f["type"] == "token" for f in frames) > 1
                assert frames[-2]["type"] == "videos" and len(frames[-2]["data"]) >= 3


async def test_websocket_without_a_key_is_refused(app_server: AppServer):
    url = app_server.base_url.replace("http", "ws") + "/v1/chat/ws"
    with pytest.raises(Exception, match=r"40[13]"):
        async with connect(url) as ws:
            await ws.recv()


async def test_question_is_validated(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        empty = await client.post("/v1/chat", json={"question": ""})
        long = await client.post("/v1/chat", json={"question": "x" * 2001})
    assert empty.status_code == 422 and "question" in empty.text
    assert long.status_code == 422 and "2000" in long.text


def test_cache_hit_is_visible_in_metrics(app_server: AppServer):
    text = httpx.get(app_server.metrics_url).text
    assert metric_value(text, "chatwizard_cache_requests_total", cache="exact", result="hit") >= 1
    assert metric_value(text, "chatwizard_chats_total") >= 1
