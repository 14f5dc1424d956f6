"""GDPR: export everything about a user; erase the user and everything derived from them.

Erasure deletes the user row (every table references it with ON DELETE CASCADE) and the Redis state
tied to them: key-lookup cache entries, rate-limit windows, the answers they put in the shared cache
(and their semantic-index entries), and their activity-session entries. What stays is the daily-active
HyperLogLog, which holds no identifier that can be read back.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from chatwizard.chat.service import user_cache_set
from chatwizard.core.activity import LAST_SEEN, STARTED
from chatwizard.core.ratelimit import KEY_PREFIX
from chatwizard.core.services import Services

EXPORT_QUERIES = {
    "account": "SELECT id, email, tier, created_at FROM users WHERE id = $1",
    "api_keys": "SELECT id, name, display_hint, scopes, created_at, expires_at, last_used_at, revoked_at "
                "FROM api_keys WHERE user_id = $1 ORDER BY created_at",
    "conversations": "SELECT id, title, created_at, updated_at FROM conversations WHERE user_id = $1 "
                     "ORDER BY created_at",
    "messages": "SELECT m.id, m.conversation_id, m.role, m.content, m.videos, m.answer_source, m.created_at "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.user_id = $1 "
                "ORDER BY m.created_at, m.role DESC",
    "learning_paths": "SELECT p.id, p.title, p.created_at, "
                      "array_agg(v.video_id ORDER BY v.position) AS video_ids FROM learning_paths p "
                      "LEFT JOIN learning_path_videos v ON v.path_id = p.id WHERE p.user_id = $1 "
                      "GROUP BY p.id ORDER BY p.created_at",
    "progress_events": "SELECT event_id, video_id, kind, position_s, created_at FROM progress_events "
                       "WHERE user_id = $1 ORDER BY created_at",
    "video_progress": "SELECT video_id, clicks, position_s, completed_at, updated_at FROM video_progress "
                      "WHERE user_id = $1",
    "calendar_sessions": "SELECT id, video_id, path_id, title, starts_at, duration_min, created_at "
                         "FROM calendar_sessions WHERE user_id = $1 ORDER BY starts_at",
}


async def export(conn: asyncpg.Connection, user_id: UUID) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for section, sql in EXPORT_QUERIES.items():
        rows = [dict(r) for r in await conn.fetch(sql, user_id)]
        for row in rows:
            if isinstance(row.get("videos"), str):
                row["videos"] = orjson.loads(row["videos"])
        data[section] = rows[0] if section == "account" and rows else rows
    feed = await conn.fetchval("SELECT 1 FROM calendar_feeds WHERE user_id = $1", user_id)
    data["calendar_feed"] = feed is not None
    return data


async def erase(services: Services, user_id: UUID) -> bool:
    """Delete the user and all that derives from them, in Postgres and in Redis."""
    keys = await services.db.write(lambda c: c.fetch(
        "SELECT id, key_hash FROM api_keys WHERE user_id = $1", user_id))
    deleted = await services.db.write(lambda c: c.fetchval(
        "DELETE FROM users WHERE id = $1 RETURNING true", user_id))
    if not deleted:
        return False
    await _erase_redis(services, str(user_id), [str(k["id"]) for k in keys],
                       [f"cw:key:{k['key_hash'].hex()}" for k in keys])
    return True


async def _erase_redis(services: Services, user: str, key_ids: list[str], lookup_keys: list[str]) -> None:
    async def run(r: Any) -> None:
        owned = [m.decode() for m in await r.smembers(user_cache_set(UUID(user)))]
        answers = [m for m in owned if "#" not in m]
        for entry in (m for m in owned if "#" in m):
            stream, entry_id = entry.split("#", 1)
            await r.xdel(stream, entry_id)
        limits = []
        for key_id in key_ids:  # the rate-limit windows of each of their keys
            limits += [k async for k in r.scan_iter(match=f"{KEY_PREFIX}*{key_id}*")]
        await r.delete(*answers, *lookup_keys, *limits, user_cache_set(UUID(user)))
        await r.zrem(LAST_SEEN, user)
        await r.zrem(STARTED, user)

    await services.cache.call("erase", run, None)
