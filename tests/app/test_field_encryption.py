"""Chat text, learning-path and calendar titles and e-mail addresses are encrypted at rest with a
versioned key: the database holds no question, answer, title or address in plain text, whichever way it
was written (nothing personal is written without a ring), users read theirs as usual, addresses are
still found (blind index), and after a key rotation rows under the old key still read."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from chatwizard.accounts import service as accounts
from chatwizard.chat.queries import CONTENT, TITLE, Exchange, store_exchanges
from chatwizard.chat.service import Answer
from chatwizard.core.crypto import FieldCipher, FieldKeyError, new_key_entry
from chatwizard.core.migrate import migrate
from chatwizard.core.settings import Settings
from chatwizard.estate.processes import stop_process
from chatwizard.privacy.reencrypt import reencrypt as rewrite_all
from tests.conftest import FIELD_KEYS, AppServer, Databases, app_env, start_server


def stored(databases: Databases, conversation_id: str) -> list[str]:
    rows = databases.primary.psql(
        f"SELECT title FROM conversations WHERE id = '{conversation_id}' UNION ALL "
        f"SELECT content FROM messages WHERE conversation_id = '{conversation_id}'")
    return rows.splitlines()


async def test_chat_text_is_ciphertext_in_the_database(app_server: AppServer, databases: Databases, make_user):
    user = await make_user()
    question = f"How do I build a pause menu in Unity? {uuid.uuid4().hex}"
    async with app_server.client(user.key) as client:
        chat = (await client.post("/v1/chat", json={"question": question})).json()
        conversation = (await client.get(f"/v1/conversations/{chat['conversation_id']}")).json()
    values = stored(databases, chat["conversation_id"])
    assert len(values) == 3 and all(v.startswith("enc:t1:") for v in values), values
    assert not any(question[:20] in v or chat["answer"][:20] in v for v in values)
    assert conversation["title"] == question[:80]
    assert [m["content"] for m in conversation["messages"]] == [question, chat["answer"]]


@pytest.fixture
def rotated_server(databases, redis_node, fake_llm, catalogue, tmp_path) -> Iterator[AppServer]:
    """The ring after a rotation: a new key first (it encrypts), the old one kept to read older rows."""
    env = app_env(databases, redis_node, fake_llm, tmp_path,
                  CHATWIZARD_FIELD_KEYS=f"{new_key_entry('t2')},{FIELD_KEYS}")
    server = start_server(env, tmp_path)
    yield server
    stop_process(server.process)


async def test_rows_under_the_old_key_read_after_rotation(app_server: AppServer, rotated_server: AppServer,
                                                          databases: Databases, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        before = (await client.post("/v1/chat", json={"question": f"Lua tables? {uuid.uuid4().hex}"})).json()
    async with rotated_server.client(user.key) as client:
        after = (await client.post("/v1/chat", json={"question": f"Godot signals? {uuid.uuid4().hex}"})).json()
        old = (await client.get(f"/v1/conversations/{before['conversation_id']}")).json()
    assert old["messages"][1]["content"] == before["answer"]
    assert all(v.startswith("enc:t1:") for v in stored(databases, before["conversation_id"]))
    assert all(v.startswith("enc:t2:") for v in stored(databases, after["conversation_id"]))


def test_migrate_encrypts_and_indexes_addresses_written_before(app_server: AppServer, databases: Databases):
    """Before encryption (no index), and without a ring before that was refused (plain text, an index
    keyed by nothing): `chatwizard migrate` encrypts both and indexes them under the ring."""
    emails = [f"legacy-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2)]
    no_key = hashlib.sha256(b"chatwizard blind index\0").digest()  # what a ring of no entries derived
    ringless_index = hmac.new(no_key, f"users.email\0{emails[1]}".encode(), hashlib.sha256).hexdigest()
    users = [databases.primary.psql(
        f"INSERT INTO users (email, email_index, tier) VALUES ('{email}', {index}, 'free') RETURNING id"
    ).splitlines()[0] for email, index in zip(emails, ["NULL", f"'\\x{ringless_index}'"], strict=True)]
    chatwizard = Path(sys.executable).with_name("chatwizard")
    as_owner = {**app_server.env, "CHATWIZARD_DATABASE_URL": databases.primary.dsn}  # migrations need DDL
    migrated = subprocess.run([chatwizard, "migrate"], env=as_owner, capture_output=True, text=True, check=True)
    assert "encrypted and indexed" in migrated.stdout
    for email, user in zip(emails, users, strict=True):
        assert databases.primary.psql(f"SELECT email FROM users WHERE id = '{user}'").startswith("enc:t1:")
        created = subprocess.run([chatwizard, "keys", "create", "--email", email], env=app_server.env,
                                 capture_output=True, text=True, check=True).stdout.strip()
        assert databases.primary.psql(f"SELECT count(*) FROM api_keys WHERE user_id = '{user}'") == "1", \
            created[:4]


def test_without_a_ring_the_cli_refuses_to_write_an_address_and_the_app_to_start(
        app_server: AppServer, databases: Databases, redis_node, fake_llm, tmp_path: Path):
    email = f"ringless-{uuid.uuid4().hex[:8]}@example.com"
    ringless = {k: v for k, v in app_server.env.items() if k != "CHATWIZARD_FIELD_KEYS"}
    chatwizard = Path(sys.executable).with_name("chatwizard")
    created = subprocess.run([chatwizard, "keys", "create", "--email", email], env=ringless,
                             capture_output=True, text=True)
    assert created.returncode == 2 and "CHATWIZARD_FIELD_KEYS is not set" in created.stderr, created
    assert "cwk_" not in created.stdout
    assert databases.primary.psql(f"SELECT count(*) FROM users WHERE email = '{email}'") == "0"
    server_env = app_env(databases, redis_node, fake_llm, tmp_path, CHATWIZARD_FIELD_KEYS="")  # set, but empty
    with pytest.raises(RuntimeError, match="CHATWIZARD_FIELD_KEYS is not set"):  # start_server raises the log
        stop_process(start_server(server_env, tmp_path).process)


async def test_path_and_calendar_titles_are_ciphertext_in_the_database(app_server: AppServer,
                                                                       databases: Databases, make_user):
    user = await make_user()
    secret = uuid.uuid4().hex
    async with app_server.client(user.key) as client:
        [video] = (await client.get("/v1/videos/search", params={"q": "unity", "limit": 1})).json()["videos"]
        path = (await client.post("/v1/paths", json={"title": f"Dad's birthday {secret}",
                                                     "video_ids": [video["id"]]})).json()
        starts = "2026-12-24T18:00:00Z"
        for body in ({"path_id": path["id"]}, {"video_id": video["id"], "title": f"With Sam {secret}"}):
            assert (await client.post("/v1/calendar/sessions",
                                      json={**body, "starts_at": starts, "duration_min": 30})).status_code == 201
        listed = {s["title"] for s in (await client.get("/v1/calendar/sessions")).json()}
        read = (await client.get(f"/v1/paths/{path['id']}")).json()["title"]
        feed = httpx.get((await client.post("/v1/calendar/feed")).json()["url"]).text
    stored_titles = databases.primary.psql(
        f"SELECT title FROM learning_paths WHERE user_id = '{user.id}' UNION ALL "
        f"SELECT title FROM calendar_sessions WHERE user_id = '{user.id}'").splitlines()
    assert len(stored_titles) == 3 and all(t.startswith("enc:t1:") for t in stored_titles), stored_titles
    assert read == f"Dad's birthday {secret}"
    assert listed == {f"Dad's birthday {secret}", f"With Sam {secret}"}
    assert f"With Sam {secret}" in feed and f"Dad's birthday {secret}" in feed


def test_a_value_only_opens_in_its_own_column_and_with_a_key_in_the_ring():
    cipher = FieldCipher(new_key_entry("v1"))
    sealed = cipher.encrypt("my question", "messages.content")
    assert cipher.decrypt(sealed, "messages.content") == "my question"
    with pytest.raises(FieldKeyError, match="does not decrypt"):
        cipher.decrypt(sealed, "conversations.title")
    with pytest.raises(FieldKeyError, match="not in the ring"):
        FieldCipher(new_key_entry("v2")).decrypt(sealed, "messages.content")


@pytest.mark.parametrize("ring", ["v1:short", "v1", "v1:" + "!" * 44])
def test_a_malformed_ring_is_refused_at_start(ring: str):
    with pytest.raises(ValidationError, match="CHATWIZARD_FIELD_KEYS entry"):
        Settings(field_keys=ring)


@pytest.fixture
def own_database(databases: Databases) -> Iterator[str]:
    """A database of its own: the job rewrites whole tables, which other tests' rows must not feel."""
    name = f"reencrypt_{uuid.uuid4().hex[:8]}"
    databases.primary.psql(f"CREATE DATABASE {name}", "postgres")
    dsn = databases.primary.dsn.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(migrate(dsn))
    yield dsn
    databases.primary.psql(f"DROP DATABASE {name} WITH (FORCE)", "postgres")


def reencrypt(dsn: str, ring: str) -> subprocess.CompletedProcess[str]:
    chatwizard = Path(sys.executable).with_name("chatwizard")
    env = {**os.environ, "CHATWIZARD_DATABASE_URL": dsn, "CHATWIZARD_FIELD_KEYS": ring}
    return subprocess.run([chatwizard, "reencrypt"], env=env, capture_output=True, text=True)


async def test_reencrypt_moves_every_value_to_the_new_key_and_the_old_key_can_go(own_database: str):
    old, new = FIELD_KEYS, new_key_entry("t2")
    before, lost_key = FieldCipher(old), FieldCipher(new_key_entry("gone"))
    conn = await asyncpg.connect(own_database)
    try:
        user = await accounts.create_user(conn, before, "learner@example.com", "free")
        await store_exchanges(conn, before, [
            Exchange(user["id"], None, f"Question {n}", Answer(f"Answer {n}", [], "openai")) for n in range(7)])
        # One message stored before encryption existed, one under a key nobody has any more.
        conversation = await conn.fetchval("SELECT id FROM conversations LIMIT 1")
        await conn.execute("INSERT INTO messages (conversation_id, role, content) "
                           "VALUES ($1, 'user', 'plain'), ($1, 'user', $2)",
                           conversation, lost_key.encrypt("lost", CONTENT))
        # A path and a session titled before their titles were encrypted: the same job encrypts them.
        path = await conn.fetchval("INSERT INTO learning_paths (user_id, title) VALUES ($1, 'My plan') "
                                   "RETURNING id", user["id"])
        await conn.execute("INSERT INTO calendar_sessions (user_id, path_id, title, starts_at, duration_min) "
                           "VALUES ($1, $2, 'My plan', now(), 30)", user["id"], path)

        first = reencrypt(own_database, f"{new},{old}")
        again = reencrypt(own_database, f"{new},{old}")

        assert first.returncode == 1, first.stderr  # the value under the lost key is reported, not dropped
        assert "messages.content: 15 re-encrypted under t2; left as they are, their key is not in the ring: " \
               "1 under gone" in first.stdout
        assert "conversations.title: 7 re-encrypted" in first.stdout
        assert "users.email: 1 re-encrypted" in first.stdout
        assert "learning_paths.title: 1 re-encrypted" in first.stdout
        assert "calendar_sessions.title: 1 re-encrypted" in first.stdout
        session_title = await conn.fetchval("SELECT title FROM calendar_sessions")
        assert FieldCipher(new).decrypt(session_title, "calendar_sessions.title") == "My plan"
        assert "messages.content: 0 re-encrypted" in again.stdout  # already done: a re-run changes nothing
        after = FieldCipher(new)  # the old key removed from the ring
        contents = [r["content"] for r in await conn.fetch("SELECT content FROM messages")
                    if not r["content"].startswith("enc:gone:")]
        assert {after.decrypt(c, CONTENT) for c in contents} == \
            {"plain"} | {f"Question {n}" for n in range(7)} | {f"Answer {n}" for n in range(7)}
        titles = [r["title"] for r in await conn.fetch("SELECT title FROM conversations")]
        assert sorted(after.decrypt(t, TITLE) for t in titles) == [f"Question {n}" for n in range(7)]
        email = await conn.fetchval("SELECT email FROM users")
        assert after.decrypt(email, "users.email") == "learner@example.com"
        # Found by address still: the blind index stays keyed by the ring's last (oldest) entry.
        assert await accounts.find_user(conn, FieldCipher(f"{new},{old}"), "learner@example.com") == user["id"]
        # Page by page (two rows a page, the unreadable one among them), back under the first key.
        back = await rewrite_all(conn, FieldCipher(f"{old},{new}"), batch_rows=2)
        assert back["messages.content"].rewritten == 15 and back["messages.content"].unreadable == {"gone": 1}
        assert back["conversations.title"].rewritten == 7 and back["users.email"].rewritten == 1
    finally:
        await conn.close()
