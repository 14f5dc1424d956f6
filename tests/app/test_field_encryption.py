"""Chat text and e-mail addresses are encrypted at rest with a versioned key: the database holds no
question, answer or address in plain text, users read theirs as usual, addresses are still found (blind
index), and after a key rotation rows under the old key still read."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatwizard.core.crypto import FieldCipher, FieldKeyError, new_key_entry
from chatwizard.core.settings import Settings
from chatwizard.estate.processes import stop_process
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
    email = f"legacy-{uuid.uuid4().hex[:8]}@example.com"
    user = databases.primary.psql(
        f"INSERT INTO users (email, tier) VALUES ('{email}', 'free') RETURNING id").splitlines()[0]
    chatwizard = Path(sys.executable).with_name("chatwizard")
    as_owner = {**app_server.env, "CHATWIZARD_DATABASE_URL": databases.primary.dsn}  # migrations need DDL
    migrated = subprocess.run([chatwizard, "migrate"], env=as_owner, capture_output=True, text=True, check=True)
    assert "encrypted and indexed" in migrated.stdout
    assert databases.primary.psql(f"SELECT email FROM users WHERE id = '{user}'").startswith("enc:t1:")
    created = subprocess.run([chatwizard, "keys", "create", "--email", email], env=app_server.env,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert databases.primary.psql(f"SELECT count(*) FROM api_keys WHERE user_id = '{user}'") == "1", created[:4]


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
