"""The app's hot read queries, the indexes each must use, and realistic arguments for them.

One list for both uses: `python -m loadrun.dbdocs plans` explains them on the 100,000-video catalogue
(docs/performance/query-plans.md), and tests/loadtest/test_hot_queries.py fails when one stops using
its index. The SQL is the app's own (imported), so the two cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from chatwizard.accounts.service import KEY_LOOKUP
from chatwizard.calendar.queries import FEED_OWNER, SESSIONS
from chatwizard.chat.queries import CONVERSATIONS, MESSAGES
from chatwizard.paths.queries import PATH_SUMMARY, PATH_VIDEOS
from chatwizard.progress.queries import SUMMARY as PROGRESS_SUMMARY
from chatwizard.videos.queries import HYBRID_SEARCH, KEYWORD_SEARCH, VIDEO_DETAIL


@dataclass(frozen=True)
class HotQuery:
    name: str
    route: str
    sql: str
    indexes: frozenset[str]  # every one must appear in the plan
    arguments: str  # a SELECT returning one row of arguments; falls back to random ids on an empty table


def busiest(table: str, column: str) -> str:
    """The value of `column` with the most rows in `table` (a random uuid when the table is empty)."""
    return (f"COALESCE((SELECT {column} FROM {table} GROUP BY {column} ORDER BY count(*) DESC LIMIT 1),"
            " gen_random_uuid())")


HOT_QUERIES = (
    HotQuery("hybrid search", "GET /v1/videos/search, POST /v1/chat (miss)", HYBRID_SEARCH,
             frozenset({"videos_embedding_hnsw", "videos_search_tsv_idx", "videos_pkey"}),
             "SELECT embedding::text, 'python decorators tutorial', 40, 10 FROM videos ORDER BY id LIMIT 1"),
    HotQuery("keyword search", "GET /v1/videos/search?mode=keyword", KEYWORD_SEARCH,
             frozenset({"videos_search_tsv_idx"}), "SELECT 'kubernetes autoscaling', 10"),
    HotQuery("video detail", "GET /v1/videos/{video_id}", VIDEO_DETAIL,
             frozenset({"videos_pkey"}), "SELECT id FROM videos ORDER BY id DESC LIMIT 1"),
    HotQuery("API key lookup", "every authenticated request (cache miss)", KEY_LOOKUP,
             frozenset({"api_keys_key_hash_key", "users_pkey"}),
             "SELECT COALESCE((SELECT key_hash FROM api_keys LIMIT 1), '\\x00'::bytea)"),
    HotQuery("conversations", "GET /v1/chat/conversations", CONVERSATIONS,
             frozenset({"conversations_user_idx"}), f"SELECT {busiest('conversations', 'user_id')}, 20"),
    HotQuery("conversation messages", "GET /v1/chat/conversations/{id}", MESSAGES,
             frozenset({"messages_conversation_idx"}), f"SELECT {busiest('messages', 'conversation_id')}"),
    HotQuery("learning paths", "GET /v1/paths", PATH_SUMMARY.format(extra=""),
             frozenset({"learning_paths_user_idx"}), f"SELECT {busiest('learning_paths', 'user_id')}"),
    HotQuery("path videos", "GET /v1/paths/{path_id}", PATH_VIDEOS,
             frozenset({"learning_path_videos_path_id_position_key", "videos_pkey"}),
             f"SELECT {busiest('learning_path_videos', 'path_id')}, gen_random_uuid()"),
    HotQuery("progress summary", "GET /v1/progress", PROGRESS_SUMMARY,
             frozenset({"video_progress_pkey"}), f"SELECT {busiest('video_progress', 'user_id')}"),
    HotQuery("calendar sessions", "GET /v1/calendar/sessions, the .ics feed", SESSIONS,
             frozenset({"calendar_sessions_user_idx"}), f"SELECT {busiest('calendar_sessions', 'user_id')}"),
    HotQuery("calendar feed owner", "GET /v1/calendar/feed/{token}.ics", FEED_OWNER,
             frozenset({"calendar_feeds_token_hash_key"}),
             "SELECT COALESCE((SELECT token_hash FROM calendar_feeds LIMIT 1), '\\x00'::bytea)"),
)


async def arguments(conn: asyncpg.Connection, query: HotQuery) -> tuple[Any, ...]:
    return tuple(await conn.fetchrow(query.arguments))


async def explain(conn: asyncpg.Connection, query: HotQuery) -> dict[str, Any]:
    """The plan the database would use, as JSON."""
    plan_json = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query.sql}", *await arguments(conn, query))
    (plan,) = json.loads(plan_json)
    return plan


async def explain_analyze(conn: asyncpg.Connection, query: HotQuery) -> str:
    """The plan as run, with timings and buffer counts, as text."""
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query.sql}", *await arguments(conn, query))
    return "\n".join(r[0] for r in rows)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def indexes_used(plan: dict[str, Any]) -> set[str]:
    return {node["Index Name"] for node in nodes(plan["Plan"]) if "Index Name" in node}
