"""Conversation storage. Every query is scoped by user_id: other users' rows simply do not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import orjson

if TYPE_CHECKING:
    from chatwizard.chat.service import Answer

TITLE_CHARS = 80


async def owns_conversation(conn: asyncpg.Connection, user_id: UUID, conversation_id: UUID) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id
    ))


async def store_exchange(conn: asyncpg.Connection, user_id: UUID, conversation_id: UUID | None,
                         question: str, answer: Answer) -> tuple[UUID, UUID]:
    """Store the question and the answer; start a conversation when none is given."""
    if conversation_id is None:
        conversation_id = await conn.fetchval(
            "INSERT INTO conversations (user_id, title) VALUES ($1, $2) RETURNING id",
            user_id, question[:TITLE_CHARS],
        )
    else:
        await conn.execute("UPDATE conversations SET updated_at = now() WHERE id = $1", conversation_id)
    await conn.execute(
        "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', $2)",
        conversation_id, question,
    )
    message_id = await conn.fetchval(
        "INSERT INTO messages (conversation_id, role, content, videos, answer_source, cache, input_tokens,"
        " output_tokens, cost_usd) VALUES ($1, 'assistant', $2, $3::jsonb, $4, $5, $6, $7, $8) RETURNING id",
        conversation_id, answer.text, orjson.dumps(answer.videos).decode(), answer.source, answer.cache,
        answer.usage.input_tokens, answer.usage.output_tokens, answer.usage.cost_usd,
    )
    return conversation_id, message_id


async def list_conversations(conn: asyncpg.Connection, user_id: UUID, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, title, created_at, updated_at FROM conversations WHERE user_id = $1 "
        "ORDER BY updated_at DESC LIMIT $2", user_id, limit,
    )
    return [dict(r) for r in rows]


async def get_conversation(conn: asyncpg.Connection, user_id: UUID,
                           conversation_id: UUID) -> dict[str, Any] | None:
    head = await conn.fetchrow(
        "SELECT id, title, created_at, updated_at FROM conversations WHERE id = $1 AND user_id = $2",
        conversation_id, user_id,
    )
    if head is None:
        return None
    messages = await conn.fetch(
        "SELECT id, role, content, videos, answer_source, cache, created_at FROM messages "
        "WHERE conversation_id = $1 ORDER BY created_at, role DESC", conversation_id,
    )
    return {**dict(head), "messages": [{**dict(m), "videos": orjson.loads(m["videos"])} for m in messages]}
