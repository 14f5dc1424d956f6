"""Progress SQL: the event log (deduplicated by event id) folded into per-video state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from chatwizard.progress.routes import ProgressEvent

# Watch position only moves forward; completion is sticky; clicks count.
FOLD = """
INSERT INTO video_progress (user_id, video_id, clicks, position_s, completed_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
ON CONFLICT (user_id, video_id) DO UPDATE SET
    clicks = video_progress.clicks + EXCLUDED.clicks,
    position_s = GREATEST(video_progress.position_s, EXCLUDED.position_s),
    completed_at = COALESCE(video_progress.completed_at, EXCLUDED.completed_at),
    updated_at = now()
"""


async def insert_event(conn: asyncpg.Connection, user_id: UUID, event: ProgressEvent) -> bool:
    """True if the event is new; False if this user already sent this event id."""
    inserted = await conn.fetchval(
        "INSERT INTO progress_events (user_id, event_id, video_id, kind, position_s) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        user_id, event.event_id, event.video_id, event.kind, event.position_s,
    )
    return bool(inserted)


async def fold(conn: asyncpg.Connection, user_id: UUID, event: ProgressEvent, duration_s: int) -> None:
    complete = event.kind == "complete"
    position = duration_s if complete else min(event.position_s or 0, duration_s)
    await conn.execute(FOLD, user_id, event.video_id, int(event.kind == "click"), position, complete)


async def video_state(conn: asyncpg.Connection, user_id: UUID, video_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT video_id, clicks, position_s, completed_at FROM video_progress "
        "WHERE user_id = $1 AND video_id = $2", user_id, video_id,
    )
    return dict(row) if row else {"video_id": video_id, "clicks": 0, "position_s": 0, "completed_at": None}


async def summary(conn: asyncpg.Connection, user_id: UUID) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT vp.video_id, v.title, vp.clicks, vp.position_s, v.duration_s, vp.completed_at "
        "FROM video_progress vp JOIN videos v ON v.id = vp.video_id WHERE vp.user_id = $1 "
        "ORDER BY vp.updated_at DESC LIMIT 200", user_id,
    )
    videos = [dict(r) for r in rows]
    return {"videos": videos, "completed": sum(1 for v in videos if v["completed_at"]),
            "watched_s": sum(v["position_s"] for v in videos)}
