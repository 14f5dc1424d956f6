"""Progress SQL: the event log (deduplicated by event id) folded into per-video state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from chatwizard.progress.routes import ProgressEvent

# Watch position only moves forward; completion is sticky; clicks count. Returns seconds gained.
FOLD = """
WITH previous AS (SELECT position_s FROM video_progress WHERE user_id = $1 AND video_id = $2)
INSERT INTO video_progress (user_id, video_id, clicks, position_s, completed_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
ON CONFLICT (user_id, video_id) DO UPDATE SET
    clicks = video_progress.clicks + EXCLUDED.clicks,
    position_s = GREATEST(video_progress.position_s, EXCLUDED.position_s),
    completed_at = COALESCE(video_progress.completed_at, EXCLUDED.completed_at),
    updated_at = now()
RETURNING position_s - COALESCE((SELECT position_s FROM previous), 0)
"""


async def insert_event(conn: asyncpg.Connection, user_id: UUID, event: ProgressEvent) -> bool:
    """True if the event is new; False if this user already sent this event id."""
    inserted = await conn.fetchval(
        "INSERT INTO progress_events (user_id, event_id, video_id, kind, position_s) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        user_id, event.event_id, event.video_id, event.kind, event.position_s,
    )
    return bool(inserted)


async def fold(conn: asyncpg.Connection, user_id: UUID, event: ProgressEvent, duration_s: int) -> int:
    """Apply an event to the user's video state; returns the watch seconds it added."""
    complete = event.kind == "complete"
    position = duration_s if complete else min(event.position_s or 0, duration_s)
    return await conn.fetchval(FOLD, user_id, event.video_id, int(event.kind == "click"), position, complete)


async def video_state(conn: asyncpg.Connection, user_id: UUID, video_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT video_id, clicks, position_s, completed_at FROM video_progress "
        "WHERE user_id = $1 AND video_id = $2", user_id, video_id,
    )
    return dict(row) if row else {"video_id": video_id, "clicks": 0, "position_s": 0, "completed_at": None}


PATH_RATIOS = """
SELECT count(vp.completed_at)::float8 / count(*) AS ratio
FROM learning_path_videos mine
JOIN learning_paths p ON p.id = mine.path_id AND p.user_id = $1
JOIN learning_path_videos pv ON pv.path_id = p.id
LEFT JOIN video_progress vp ON vp.user_id = $1 AND vp.video_id = pv.video_id
WHERE mine.video_id = $2 GROUP BY p.id
"""


async def path_ratios(conn: asyncpg.Connection, user_id: UUID, video_id: str) -> list[float]:
    """Completion ratio of each of the user's paths that contain this video."""
    return [r["ratio"] for r in await conn.fetch(PATH_RATIOS, user_id, video_id)]


SUMMARY = """
SELECT vp.video_id, v.title, vp.clicks, vp.position_s, v.duration_s, vp.completed_at
FROM video_progress vp JOIN videos v ON v.id = vp.video_id WHERE vp.user_id = $1
ORDER BY vp.updated_at DESC LIMIT 200
"""


async def summary(conn: asyncpg.Connection, user_id: UUID) -> dict[str, Any]:
    rows = await conn.fetch(SUMMARY, user_id)
    videos = [dict(r) for r in rows]
    return {"videos": videos, "completed": sum(1 for v in videos if v["completed_at"]),
            "watched_s": sum(v["position_s"] for v in videos)}
