"""`chatwizard retention` deletes chat history and audit rows older than their configured periods, and
nothing newer; expired browser sessions and sign-in links go at once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import AppServer, Databases


def count(databases: Databases, sql: str) -> int:
    return int(databases.primary.psql(sql))


async def test_retention_deletes_only_what_is_older_than_the_period(app_server: AppServer, databases: Databases,
                                                                   make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        old, recent = [(await client.post("/v1/chat", json={"question": f"Unity pause menu? {uuid.uuid4()}"})).json()
                       for _ in range(2)]
    old_id, recent_id = old["conversation_id"], recent["conversation_id"]
    databases.primary.psql(  # the first conversation happened 40 days ago
        f"UPDATE messages SET created_at = now() - interval '40 days' WHERE conversation_id = '{old_id}';"
        f"UPDATE conversations SET updated_at = now() - interval '40 days' WHERE id = '{old_id}'")
    marker = uuid.uuid4().hex
    databases.primary.psql(
        "INSERT INTO audit_events (at, action, outcome, target) VALUES "
        f"(now() - interval '100 days', 'test_old', 'success', '{marker}'), "
        f"(now() - interval '10 days', 'test_recent', 'success', '{marker}')")
    chatwizard = Path(sys.executable).with_name("chatwizard")
    env = {**app_server.env, "CHATWIZARD_RETENTION_CHAT_DAYS": "30", "CHATWIZARD_RETENTION_AUDIT_DAYS": "60"}
    result = subprocess.run([chatwizard, "retention"], env=env, capture_output=True, text=True, check=True)
    assert "deleted:" in result.stdout
    assert count(databases, f"SELECT count(*) FROM messages WHERE conversation_id = '{old_id}'") == 0
    assert count(databases, f"SELECT count(*) FROM conversations WHERE id = '{old_id}'") == 0
    assert count(databases, f"SELECT count(*) FROM messages WHERE conversation_id = '{recent_id}'") == 2
    assert databases.primary.psql(f"SELECT string_agg(action, ',') FROM audit_events WHERE target = '{marker}'") \
        == "test_recent"
    async with app_server.client(user.key) as client:
        listed = (await client.get("/v1/conversations")).json()
    assert [c["id"] for c in listed] == [recent_id]


async def test_retention_deletes_expired_sessions_and_sign_in_links(app_server: AppServer, databases: Databases,
                                                                   make_user, db):
    user = await make_user()
    for ends_in in ("-1 second", "1 hour"):
        await db.execute("INSERT INTO web_sessions (session_hash, user_id, expires_at) "
                         f"VALUES ($1, $2, now() + interval '{ends_in}')", uuid.uuid4().bytes, user.id)
        await db.execute("INSERT INTO sign_in_links (token_hash, kind, tier, user_id, expires_at) "
                         f"VALUES ($1, 'sign_in', 'free', $2, now() + interval '{ends_in}')", uuid.uuid4().bytes,
                         user.id)
    chatwizard = Path(sys.executable).with_name("chatwizard")
    subprocess.run([chatwizard, "retention"], env=app_server.env, capture_output=True, check=True)
    for table in ("web_sessions", "sign_in_links"):
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user.id) == 1, table
        assert await db.fetchval(f"SELECT bool_and(expires_at > now()) FROM {table} WHERE user_id = $1",
                                 user.id), f"{table}: the live row went"
