"""Calendar SQL, scoped by user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from chatwizard.calendar.routes import SessionCreate

SESSION_COLUMNS = "id, video_id, path_id, title, starts_at, duration_min, created_at"
SESSIONS = f"SELECT {SESSION_COLUMNS} FROM calendar_sessions WHERE user_id = $1 ORDER BY starts_at"
FEED_OWNER = "SELECT user_id FROM calendar_feeds WHERE token_hash = $1"


async def target_title(conn: asyncpg.Connection, user_id: UUID, video_id: str | None,
                       path_id: UUID | None) -> str | None:
    if video_id is not None:
        return await conn.fetchval("SELECT title FROM videos WHERE id = $1", video_id)
    return await conn.fetchval(
        "SELECT title FROM learning_paths WHERE id = $1 AND user_id = $2", path_id, user_id
    )


async def create_session(conn: asyncpg.Connection, user_id: UUID, body: SessionCreate,
                         title: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"INSERT INTO calendar_sessions (user_id, video_id, path_id, title, starts_at, duration_min) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SESSION_COLUMNS}",
        user_id, body.video_id, body.path_id, title, body.starts_at, body.duration_min,
    )
    return dict(row)


async def sessions(conn: asyncpg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(SESSIONS, user_id)
    return [dict(r) for r in rows]


async def feed_sessions(conn: asyncpg.Connection, token_hash: bytes) -> list[dict[str, Any]] | None:
    user_id = await conn.fetchval(FEED_OWNER, token_hash)
    if user_id is None:
        return None
    return await sessions(conn, user_id)
