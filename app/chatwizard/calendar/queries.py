"""Calendar SQL, scoped by user. Session titles are encrypted (the learner's words, or their path's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from chatwizard.core.crypto import FieldCipher
from chatwizard.paths.queries import TITLE as PATH_TITLE

if TYPE_CHECKING:
    from chatwizard.calendar.routes import SessionCreate

SESSION_COLUMNS = "id, video_id, path_id, title, starts_at, duration_min, created_at"
SESSIONS = f"SELECT {SESSION_COLUMNS} FROM calendar_sessions WHERE user_id = $1 ORDER BY starts_at"
FEED_OWNER = "SELECT user_id FROM calendar_feeds WHERE token_hash = $1"
TITLE = "calendar_sessions.title"  # in crypto.ENCRYPTED_COLUMNS


async def target_title(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID, video_id: str | None,
                       path_id: UUID | None) -> str | None:
    if video_id is not None:
        return await conn.fetchval("SELECT title FROM videos WHERE id = $1", video_id)
    title = await conn.fetchval(
        "SELECT title FROM learning_paths WHERE id = $1 AND user_id = $2", path_id, user_id
    )
    return None if title is None else cipher.decrypt(title, PATH_TITLE)


async def create_session(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID, body: SessionCreate,
                         title: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"INSERT INTO calendar_sessions (user_id, video_id, path_id, title, starts_at, duration_min) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SESSION_COLUMNS}",
        user_id, body.video_id, body.path_id, cipher.encrypt(title, TITLE), body.starts_at, body.duration_min,
    )
    return cipher.readable(row, "calendar_sessions")


async def sessions(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(SESSIONS, user_id)
    return [cipher.readable(r, "calendar_sessions") for r in rows]


async def feed_sessions(conn: asyncpg.Connection, cipher: FieldCipher,
                        token_hash: bytes) -> list[dict[str, Any]] | None:
    user_id = await conn.fetchval(FEED_OWNER, token_hash)
    if user_id is None:
        return None
    return await sessions(conn, cipher, user_id)
