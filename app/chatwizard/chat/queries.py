"""Conversation storage. Every query is scoped by user_id: other users' rows simply do not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import orjson

from chatwizard.core.crypto import ENCRYPTED_COLUMNS, FieldCipher

if TYPE_CHECKING:
    from chatwizard.chat.service import Answer

TITLE_CHARS = 80
TITLE, CONTENT = ENCRYPTED_COLUMNS["title"], ENCRYPTED_COLUMNS["content"]


async def owns_conversation(conn: asyncpg.Connection, user_id: UUID, conversation_id: UUID) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id
    ))


# One statement (atomic on its own, one round trip): start or touch the conversation, then store the
# question and the answer. $1 is NULL for a new conversation. Both messages share one timestamp, so
# readers order by (created_at, role DESC): the user's question first.
STORE_EXCHANGE = """
WITH started AS (
    INSERT INTO conversations (user_id, title) SELECT $2, $3 WHERE $1::uuid IS NULL RETURNING id
), touched AS (
    UPDATE conversations SET updated_at = now() WHERE id = $1 AND $1::uuid IS NOT NULL RETURNING id
), conversation AS (
    SELECT id FROM started UNION ALL SELECT id FROM touched
), asked AS (
    INSERT INTO messages (conversation_id, role, content) SELECT id, 'user', $4 FROM conversation
)
INSERT INTO messages (conversation_id, role, content, videos, answer_source, cache, input_tokens,
                      output_tokens, cost_usd)
SELECT id, 'assistant', $5, $6::jsonb, $7, $8, $9, $10, $11 FROM conversation
RETURNING conversation_id, id
"""


async def store_exchange(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID,
                         conversation_id: UUID | None, question: str, answer: Answer) -> tuple[UUID, UUID]:
    """Store the question and the answer (encrypted); start a conversation when none is given."""
    row = await conn.fetchrow(
        STORE_EXCHANGE, conversation_id, user_id, cipher.encrypt(question[:TITLE_CHARS], TITLE),
        cipher.encrypt(question, CONTENT), cipher.encrypt(answer.text, CONTENT),
        orjson.dumps(answer.videos).decode(), answer.source, answer.cache, answer.usage.input_tokens,
        answer.usage.output_tokens, answer.usage.cost_usd,
    )
    return row["conversation_id"], row["id"]


CONVERSATIONS = """
SELECT id, title, created_at, updated_at FROM conversations
WHERE user_id = $1 ORDER BY updated_at DESC LIMIT $2
"""
MESSAGES = """
SELECT id, role, content, videos, answer_source, cache, created_at FROM messages
WHERE conversation_id = $1 ORDER BY created_at, role DESC
"""


def readable(row: asyncpg.Record, cipher: FieldCipher) -> dict[str, Any]:
    """A conversation or message row with its encrypted text decrypted and its videos parsed."""
    out = cipher.readable(row)
    if isinstance(out.get("videos"), str):
        out["videos"] = orjson.loads(out["videos"])
    return out


async def list_conversations(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID,
                             limit: int) -> list[dict[str, Any]]:
    return [readable(r, cipher) for r in await conn.fetch(CONVERSATIONS, user_id, limit)]


async def get_conversation(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID,
                           conversation_id: UUID) -> dict[str, Any] | None:
    head = await conn.fetchrow(
        "SELECT id, title, created_at, updated_at FROM conversations WHERE id = $1 AND user_id = $2",
        conversation_id, user_id,
    )
    if head is None:
        return None
    messages = await conn.fetch(MESSAGES, conversation_id)
    return {**readable(head, cipher), "messages": [readable(m, cipher) for m in messages]}
