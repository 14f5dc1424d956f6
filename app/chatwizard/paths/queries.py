"""Learning path SQL, always scoped by the owner's user_id."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from chatwizard.core.crypto import FieldCipher

TITLE = "learning_paths.title"  # in crypto.ENCRYPTED_COLUMNS: the learner's own words

class UnknownVideos(ValueError):
    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.ids = ids


PATH_SUMMARY = """
SELECT p.id, p.title, p.created_at, p.updated_at, count(pv.video_id) AS videos,
       count(vp.completed_at) AS completed,
       CASE WHEN count(pv.video_id) = 0 THEN 0
            ELSE round(100.0 * count(vp.completed_at) / count(pv.video_id), 1)::float8 END AS progress_percent
FROM learning_paths p
LEFT JOIN learning_path_videos pv ON pv.path_id = p.id
LEFT JOIN video_progress vp ON vp.user_id = p.user_id AND vp.video_id = pv.video_id
WHERE p.user_id = $1 {extra}
GROUP BY p.id ORDER BY p.created_at DESC
"""

PATH_VIDEOS = """
SELECT pv.position, v.id, v.title, v.channel_title AS channel, v.duration_s, v.thumbnail_url,
       COALESCE(vp.position_s, 0) AS watched_s, vp.completed_at IS NOT NULL AS completed
FROM learning_path_videos pv JOIN videos v ON v.id = pv.video_id
LEFT JOIN video_progress vp ON vp.user_id = $2 AND vp.video_id = pv.video_id
WHERE pv.path_id = $1 ORDER BY pv.position
"""


async def create(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID, title: str,
                 video_ids: list[str]) -> UUID:
    known = {r["id"] for r in await conn.fetch("SELECT id FROM videos WHERE id = ANY($1)", video_ids)}
    missing = [v for v in video_ids if v not in known]
    if missing:
        raise UnknownVideos(missing)
    path_id = await conn.fetchval(
        "INSERT INTO learning_paths (user_id, title) VALUES ($1, $2) RETURNING id", user_id,
        cipher.encrypt(title, TITLE))
    await set_order(conn, path_id, video_ids, fresh=True)
    return path_id


async def set_order(conn: asyncpg.Connection, path_id: UUID, video_ids: list[str],
                    fresh: bool = False) -> None:
    if not fresh:
        await conn.execute("DELETE FROM learning_path_videos WHERE path_id = $1", path_id)
        await conn.execute("UPDATE learning_paths SET updated_at = now() WHERE id = $1", path_id)
    await conn.executemany(
        "INSERT INTO learning_path_videos (path_id, video_id, position) VALUES ($1, $2, $3)",
        [(path_id, video_id, position) for position, video_id in enumerate(video_ids)],
    )


async def video_ids(conn: asyncpg.Connection, user_id: UUID, path_id: UUID) -> list[str] | None:
    owner = await conn.fetchval("SELECT user_id FROM learning_paths WHERE id = $1", path_id)
    if owner != user_id:
        return None
    return [r["video_id"] for r in await conn.fetch(
        "SELECT video_id FROM learning_path_videos WHERE path_id = $1 ORDER BY position", path_id)]


async def list_for(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(PATH_SUMMARY.format(extra=""), user_id)
    return [cipher.readable(r, "learning_paths") for r in rows]


async def get(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID,
              path_id: UUID) -> dict[str, Any] | None:
    head = await conn.fetchrow(PATH_SUMMARY.format(extra="AND p.id = $2"), user_id, path_id)
    if head is None:
        return None
    items = [dict(r) for r in await conn.fetch(PATH_VIDEOS, path_id, user_id)]
    return {**cipher.readable(head, "learning_paths"), "items": items}
