"""GDPR: export everything about a user; erase the user and everything derived from them.

Erasure deletes the user row (every table references it with ON DELETE CASCADE) and the Redis state
tied to them: key-lookup cache entries, rate-limit windows, the answers and question embeddings they
put in the shared cache (with their semantic-index entries and askers' counts), their place among a
question's askers, and their activity-session entries. What stays is the daily-active
HyperLogLog, which holds no identifier that can be read back.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from chatwizard.audit import service as audit
from chatwizard.chat.queries import readable
from chatwizard.chat.service import ASKER_FIELD, askers_key, user_cache_set
from chatwizard.core.activity import LAST_SEEN, STARTED
from chatwizard.core.crypto import FieldCipher
from chatwizard.core.ratelimit import KEY_PREFIX
from chatwizard.core.services import Services
from chatwizard.web_sessions.service import end_user_sessions

# The sections holding field-encrypted columns, and their tables.
ENCRYPTED_SECTIONS = {"account": "users", "conversations": "conversations", "messages": "messages",
                      "learning_paths": "learning_paths", "calendar_sessions": "calendar_sessions"}
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
    "security_events": "SELECT at, last_at, occurrences, action, outcome, host(source) AS source, target, "
                       "detail FROM audit_events "
                       "WHERE actor_user = $1 ORDER BY at, id",
}


async def export(conn: asyncpg.Connection, cipher: FieldCipher, user_id: UUID) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for section, sql in EXPORT_QUERIES.items():
        rows = [readable(r, cipher, ENCRYPTED_SECTIONS[section]) if section in ENCRYPTED_SECTIONS else dict(r)
                for r in await conn.fetch(sql, user_id)]
        for row in rows:
            for column in ("videos", "detail"):  # jsonb arrives as text
                if isinstance(row.get(column), str):
                    row[column] = orjson.loads(row[column])
        data[section] = rows[0] if section == "account" and rows else rows
    feed = await conn.fetchval("SELECT 1 FROM calendar_feeds WHERE user_id = $1", user_id)
    data["calendar_feed"] = feed is not None
    return data


async def erase(services: Services, user_id: UUID) -> bool:
    """Delete the user and all that derives from them, in Postgres and in Redis."""
    keys = await services.db.write(lambda c: c.fetch(
        "SELECT key_hash FROM api_keys WHERE user_id = $1", user_id))

    async def delete(conn: asyncpg.Connection) -> list[str] | None:
        """The user's sessions' cache entries (None if there was no such user)."""
        sessions = await end_user_sessions(conn, user_id)
        await conn.execute("DELETE FROM sign_in_links WHERE email_index = "
                           "(SELECT email_index FROM users WHERE id = $1)", user_id)
        if not await conn.fetchval("DELETE FROM users WHERE id = $1 RETURNING true", user_id):
            return None
        await audit.forget(conn, user_id)
        return sessions

    sessions = await services.db.write(delete)
    if sessions is None:
        return False
    await _erase_redis(services, str(user_id), [f"cw:key:{k['key_hash'].hex()}" for k in keys] + sessions)
    return True


async def _erase_redis(services: Services, user: str, lookup_keys: list[str]) -> None:
    asker = services.cipher.blind_index(user, ASKER_FIELD)

    async def run(r: Any) -> list[str]:
        owned = [m.decode() for m in await r.smembers(user_cache_set(UUID(user)))]
        gone = []
        for member in owned:
            if "#" in member:  # a semantic-index entry they added
                stream, entry_id = member.split("#", 1)
                await r.xdel(stream, entry_id)
            elif member.endswith(":askers"):  # they were counted among a question's askers
                await r.srem(member, asker)
            else:  # an answer or embedding made from their words (and who else asked for that answer)
                gone += [member, askers_key(member)]
        # Their rate-limit windows (counted per user, over all their keys).
        limits = [k.decode() async for k in r.scan_iter(match=f"{KEY_PREFIX}*{user}*")]
        await r.zrem(LAST_SEEN, user)
        await r.zrem(STARTED, user)
        return [*gone, *limits, user_cache_set(UUID(user))]

    owned = await services.cache.call("erase", run, [])
    # Lookups always go (even with Redis down, so no process keeps them); deletes reach near caches.
    await services.cache.delete(*lookup_keys, *owned)


RETENTION_BATCH = 5000  # rows per statement: short locks, bounded WAL bursts on a large first run
# Each statement deletes one batch and returns how many rows went.
RETENTION = {
    "messages": "WITH gone AS (DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                "WHERE created_at < now() - make_interval(days => $1) LIMIT $2) RETURNING 1) "
                "SELECT count(*) FROM gone",
    "conversations": "WITH gone AS (DELETE FROM conversations c WHERE id IN (SELECT id FROM conversations c "
                     "WHERE updated_at < now() - make_interval(days => $1) "
                     "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id) LIMIT $2) "
                     "RETURNING 1) SELECT count(*) FROM gone",
    # The app's role may not delete audit rows itself; this function, run as the owner, may (0005).
    "audit_events": "SELECT audit_purge($1, $2)",
}


async def apply_retention(conn: asyncpg.Connection, chat_days: int, audit_days: int) -> dict[str, int]:
    """Delete chat history and audit rows older than their periods; return rows deleted per table."""
    deleted = {}
    for table, sql in RETENTION.items():
        days = audit_days if table == "audit_events" else chat_days
        deleted[table] = 0
        while True:
            count = int(await conn.fetchval(sql, days, RETENTION_BATCH))
            deleted[table] += count
            if count < RETENTION_BATCH:
                break
    return deleted
