"""Catalogue SQL: hybrid search (HNSW cosine + full-text, fused by reciprocal rank), detail, upsert."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np

VIDEO_COLUMNS = "v.id, v.title, v.channel_title, v.duration_s, v.thumbnail_url, v.published_at"
RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al.); damps the weight of top ranks

# Each arm takes its own top `candidates` using its index; the fused list keeps the best `limit`.
HYBRID_SEARCH = f"""
WITH semantic AS (
    SELECT id, row_number() OVER (ORDER BY distance) AS rank, distance
    FROM (SELECT id, embedding <=> $1 AS distance FROM videos ORDER BY embedding <=> $1 LIMIT $3) s
), keyword AS (
    SELECT id, row_number() OVER (ORDER BY score DESC) AS rank
    FROM (SELECT id, ts_rank_cd(search_tsv, query) AS score
          FROM videos, websearch_to_tsquery('english', $2) query
          WHERE search_tsv @@ query ORDER BY score DESC LIMIT $3) k
)
SELECT {VIDEO_COLUMNS}, s.distance, s.rank AS semantic_rank, k.rank AS keyword_rank,
       COALESCE(1.0 / ({RRF_K} + s.rank), 0) + COALESCE(1.0 / ({RRF_K} + k.rank), 0) AS score
FROM semantic s FULL JOIN keyword k USING (id) JOIN videos v USING (id)
ORDER BY score DESC, v.view_count DESC LIMIT $4
"""

KEYWORD_SEARCH = f"""
SELECT {VIDEO_COLUMNS}, NULL::float8 AS distance, NULL::bigint AS semantic_rank,
       row_number() OVER (ORDER BY ts_rank_cd(search_tsv, query) DESC) AS keyword_rank,
       ts_rank_cd(search_tsv, query) AS score
FROM videos v, websearch_to_tsquery('english', $1) query
WHERE search_tsv @@ query ORDER BY score DESC, v.view_count DESC LIMIT $2
"""

VIDEO_DETAIL = f"""
SELECT {VIDEO_COLUMNS}, v.description, v.channel_id, v.tags, v.view_count FROM videos v WHERE v.id = $1
"""

UPSERT_VIDEO = """
INSERT INTO videos (id, title, description, channel_id, channel_title, published_at, duration_s,
                    thumbnail_url, tags, view_count, embedding)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET
    title = EXCLUDED.title, description = EXCLUDED.description, channel_id = EXCLUDED.channel_id,
    channel_title = EXCLUDED.channel_title, published_at = EXCLUDED.published_at,
    duration_s = EXCLUDED.duration_s, thumbnail_url = EXCLUDED.thumbnail_url, tags = EXCLUDED.tags,
    view_count = EXCLUDED.view_count, embedding = EXCLUDED.embedding, updated_at = now()
WHERE (videos.title, videos.description, videos.channel_title, videos.duration_s, videos.thumbnail_url,
       videos.tags, videos.view_count, videos.published_at)
   IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.description, EXCLUDED.channel_title, EXCLUDED.duration_s,
       EXCLUDED.thumbnail_url, EXCLUDED.tags, EXCLUDED.view_count, EXCLUDED.published_at)
"""


def vector_literal(embedding: list[float]) -> str:
    """pgvector's text form; passing text avoids registering a codec on every pooled connection."""
    return "[" + ",".join(f"{x:.6f}" for x in np.asarray(embedding, dtype=np.float32)) + "]"


async def hybrid_search(conn: asyncpg.Connection, embedding: list[float], text: str, limit: int,
                        ef_search: int) -> list[dict[str, Any]]:
    candidates = max(limit * 4, 40)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        rows = await conn.fetch(HYBRID_SEARCH, vector_literal(embedding), text, candidates, limit)
    return [dict(r) for r in rows]


async def keyword_search(conn: asyncpg.Connection, text: str, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(KEYWORD_SEARCH, text, limit)]


async def catalogue_version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT version FROM catalogue_state"))
