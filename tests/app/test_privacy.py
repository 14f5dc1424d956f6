"""GDPR: export returns all of a user's data; erasure leaves no row and no Redis key of theirs."""

from __future__ import annotations

import uuid

import redis

from tests.conftest import AppServer, Databases

TABLES_WITH_USER = ["users", "api_keys", "conversations", "learning_paths", "progress_events", "video_progress",
                    "calendar_sessions", "calendar_feeds"]


async def build_history(client, question: str) -> dict:
    chat = (await client.post("/v1/chat", json={"question": f"{question} {uuid.uuid4().hex}"})).json()
    video = chat["videos"][0]["id"]
    await client.post("/v1/progress/events", json={"event_id": str(uuid.uuid4()), "video_id": video, "kind": "click"})
    path = (await client.post("/v1/paths", json={"title": "Mine", "video_ids": [video]})).json()
    await client.post("/v1/calendar/sessions", json={"path_id": path["id"], "starts_at": "2026-12-01T10:00:00Z",
                                                     "duration_min": 30})
    await client.post("/v1/calendar/feed")
    return {"chat": chat, "video": video, "path": path}


async def test_export_contains_everything(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        made = await build_history(client, "How do I animate an NPC?")
        await client.get("/v1/me/export")
        export = (await client.get("/v1/me/export")).json()  # the first export is in the second's record
    assert export["account"]["email"] == user.email
    assert len(export["api_keys"]) == 1 and "key_hash" not in export["api_keys"][0]
    assert [c["id"] for c in export["conversations"]] == [made["chat"]["conversation_id"]]
    assert [m["role"] for m in export["messages"]] == ["user", "assistant"]
    assert export["learning_paths"][0]["video_ids"] == [made["video"]]
    assert export["progress_events"][0]["kind"] == "click" and export["video_progress"][0]["clicks"] == 1
    assert len(export["calendar_sessions"]) == 1 and export["calendar_feed"] is True
    assert [e["action"] for e in export["security_events"]] == ["data_exported"]


async def test_erase_leaves_no_row_and_no_redis_key(app_server: AppServer, databases: Databases, redis_node,
                                                    make_user):
    user, other = await make_user(), await make_user()
    async with app_server.client(user.key) as client:
        # Words no other test asks, so the answer is fresh (a miss) and this user puts it in the cache.
        made = await build_history(client, "Which lesson covers quaternion interpolation along camera rails?")
        assert made["chat"]["cache"] is None, made["chat"]
        store = redis.Redis.from_url(redis_node.url)
        answer_keys = store.smembers(f"cw:user:{user.id}:cache")
        assert answer_keys, "the chat should have put an answer in the shared cache"
        [key] = (await client.get("/v1/keys")).json()
        assert list(store.scan_iter(match=f"cw:rl*{user.id}*")), "their rate-limit window should exist"
        assert (await client.get("/v1/me/export")).status_code == 200  # an audit row that names them
        assert (await client.delete("/v1/me")).status_code == 204
        assert (await client.get("/v1/me")).status_code == 401
    for table in TABLES_WITH_USER:
        column = "id" if table == "users" else "user_id"
        assert databases.primary.psql(f"SELECT count(*) FROM {table} WHERE {column} = '{user.id}'") == "0", table
    conversation = made["chat"]["conversation_id"]
    assert databases.primary.psql(f"SELECT count(*) FROM messages WHERE conversation_id = '{conversation}'") == "0"
    assert databases.primary.psql(  # their security record stays, without naming them
        f"SELECT count(*) FROM audit_events WHERE actor_user = '{user.id}' OR target = 'user:{user.id}'") == "0"
    assert [k for k in store.scan_iter() if str(user.id).encode() in k or key["id"].encode() in k] == []
    assert not any(store.exists(k.decode()) for k in answer_keys if b"#" not in k), "their cached answer survived"
    assert store.zscore("cw:sess:last", str(user.id)) is None
    async with app_server.client(other.key) as client:  # other users are untouched
        assert (await client.get("/v1/me")).status_code == 200
