"""Conversation storage. Every query is scoped by user_id: other users' rows simply do not exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import orjson
from uuid6 import uuid7

from chatwizard.core.crypto import FieldCipher

if TYPE_CHECKING:
    from chatwizard.chat.service import Answer

TITLE_CHARS = 80
TITLE, CONTENT = "conversations.title", "messages.content"  # in crypto.ENCRYPTED_COLUMNS


async def owns_conversation(conn: asyncpg.Connection, user_id: UUID, conversation_id: UUID) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id
    ))


@dataclass(frozen=True)
class Exchange:
    """A question and its answer to store; ``conversation_id`` None starts a conversation."""
    user_id: UUID
    conversation_id: UUID | None
    question: str
    answer: Answer


# One statement for a whole batch of exchanges (see core/batching.py): start or touch each
# conversation, then store each question and answer. Ids are made here, so no row has to be read
# back; they are time-ordered (UUIDv7), questions' as well as answers', so the primary-key indexes
# grow at their right edge instead of touching a random page per row (and writing that page whole
# to the WAL once per checkpoint). An exchange whose conversation is gone (erased meanwhile) or
# is not the user's stores nothing.
# Both messages of an exchange share one timestamp: readers order by (created_at, role DESC).
STORE_EXCHANGES = """
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $2::boolean[], $3::uuid[], $4::text[], $5::uuid[], $6::text[],
                         $7::uuid[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[],
                         $13::int[], $14::float8[])
        AS b(conversation_id, is_new, user_id, title, question_id, question, answer_id, answer, videos,
             source, cache, input_tokens, output_tokens, cost_usd)
), started AS (
    INSERT INTO conversations (id, user_id, title)
    SELECT conversation_id, user_id, title FROM batch WHERE is_new
), touched AS (
    UPDATE conversations c SET updated_at = now() FROM batch b
    WHERE c.id = b.conversation_id AND c.user_id = b.user_id AND NOT b.is_new RETURNING c.id, c.user_id
), kept AS (
    SELECT * FROM batch WHERE is_new OR (conversation_id, user_id) IN (SELECT id, user_id FROM touched)
), asked AS (
    INSERT INTO messages (id, conversation_id, role, content)
    SELECT question_id, conversation_id, 'user', question FROM kept
)
INSERT INTO messages (id, conversation_id, role, content, videos, answer_source, cache, input_tokens,
                      output_tokens, cost_usd)
SELECT answer_id, conversation_id, 'assistant', answer, videos::jsonb, source, cache, input_tokens,
       output_tokens, cost_usd FROM kept
RETURNING id
"""


class ConversationGone(LookupError):
    pass


async def store_exchanges(conn: asyncpg.Connection, cipher: FieldCipher,
                          exchanges: list[Exchange]) -> list[tuple[UUID, UUID] | Exception]:
    """Store a batch of exchanges (text encrypted); per exchange (conversation id, answer id)."""
    conversations = [e.conversation_id or uuid7() for e in exchanges]
    answer_ids = [uuid7() for _ in exchanges]
    stored = {row["id"] for row in await conn.fetch(
        STORE_EXCHANGES, conversations, [e.conversation_id is None for e in exchanges],
        [e.user_id for e in exchanges],
        [cipher.encrypt(e.question[:TITLE_CHARS], TITLE) for e in exchanges],
        [uuid7() for _ in exchanges], [cipher.encrypt(e.question, CONTENT) for e in exchanges],
        answer_ids, [cipher.encrypt(e.answer.text, CONTENT) for e in exchanges],
        [orjson.dumps(e.answer.videos).decode() for e in exchanges],
        [e.answer.source for e in exchanges], [e.answer.cache for e in exchanges],
        [e.answer.usage.input_tokens for e in exchanges], [e.answer.usage.output_tokens for e in exchanges],
        [e.answer.usage.cost_usd for e in exchanges],
    )}
    return [(conversation, answer) if answer in stored else ConversationGone(conversation)
            for conversation, answer in zip(conversations, answer_ids, strict=True)]


CONVERSATIONS = """
SELECT id, title, created_at, updated_at FROM conversations
WHERE user_id = $1 ORDER BY updated_at DESC LIMIT $2
"""
MESSAGES = """
SELECT id, role, content, videos, answer_source, cache, created_at FROM messages
WHERE conversation_id = $1 ORDER BY created_at, role DESC
"""


def readable(row: asyncpg.Record, cipher: FieldCipher, table: str) -> dict[str, Any]:
    """A row of ``table`` with its encrypted text decrypted and its videos parsed."""
    out = cipher.readable(row, table)
    if isinstance(out.get("videos"), str):
        out["videos"] = orjson.loads(out["videos"])
    return out


async def list_conversations(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID,
                             limit: int) -> list[dict[str, Any]]:
    return [readable(r, cipher, "conversations") for r in await conn.fetch(CONVERSATIONS, user_id, limit)]


async def get_conversation(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID,
                           conversation_id: UUID) -> dict[str, Any] | None:
    head = await conn.fetchrow(
        "SELECT id, title, created_at, updated_at FROM conversations WHERE id = $1 AND user_id = $2",
        conversation_id, user_id,
    )
    if head is None:
        return None
    messages = await conn.fetch(MESSAGES, conversation_id)
    return {**readable(head, cipher, "conversations"), "messages": [readable(m, cipher, "messages")
                                                                   for m in messages]}
