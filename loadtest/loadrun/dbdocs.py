"""Database evidence on the load test's 100,000-video catalogue (run `make loadtest` once first):

  python -m loadrun.dbdocs plans   EXPLAIN (ANALYZE, BUFFERS) of hot queries: docs/performance/query-plans.md
  python -m loadrun.dbdocs hnsw    HNSW recall and latency against exact search: docs/performance/hnsw.md

Both start the perf estate's Postgres pair from its state folder and stop it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from chatwizard.core.settings import Settings
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import start_pair
from chatwizard.videos.queries import vector_literal
from loadrun.hot_queries import HOT_QUERIES, explain_analyze

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "performance"
# The sweep: graph degree and build effort per index, then search effort per query. The app asks for
# `CANDIDATES` nearest videos per search (videos/queries.py: max(limit * 4, 40)), so ef_search >= 40.
BUILDS = ((8, 64), (16, 64), (16, 128), (24, 96))
EF_SEARCH = (40, 64, 100, 200)
CANDIDATES = 40
VECTOR_LITERAL = re.compile(r"'\[[-0-9.,e]+\]'::vector")


@contextmanager
def primary_and_replica(state: Path) -> Iterator[tuple[str, str]]:
    primary, replica = start_pair(state, free_port(), free_port())
    try:
        yield primary.dsn, replica.dsn
    finally:
        replica.stop()
        primary.stop()


async def plans_markdown(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        videos = await conn.fetchval("SELECT count(*) FROM videos")
        version = await conn.fetchval("SHOW server_version")
        await conn.execute(f"SET hnsw.ef_search = {Settings().hnsw_ef_search}")
        sections = []
        for query in HOT_QUERIES:
            await explain_analyze(conn, query)  # warm: the plan shown is the steady state, not a cold read
            plan = VECTOR_LITERAL.sub("'[…384 numbers…]'::vector", await explain_analyze(conn, query))
            sections.append(f"## {query.name}\n\nServes: {query.route}. Must use: "
                            f"{', '.join(f'`{i}`' for i in sorted(query.indexes))}.\n\n```\n{plan}\n```\n")
    finally:
        await conn.close()
    return (
        "# Hot query plans\n\n"
        f"`EXPLAIN (ANALYZE, BUFFERS)` of each hot read query on the read replica after a 10,000-user load "
        f"test: {videos:,} videos, PostgreSQL {version}, pgvector HNSW with `hnsw.ef_search` = "
        f"{Settings().hnsw_ef_search}, measured {datetime.now(UTC):%Y-%m-%d} on this machine "
        f"({platform.machine()}, {os.cpu_count()} cores). Arguments are realistic ones drawn from the data "
        "(the busiest user, conversation and path); each query ran once to warm the cache first.\n\n"
        "The SQL is the app's own (`loadtest/loadrun/hot_queries.py` imports it), and "
        "`tests/loadtest/test_hot_queries.py` fails when a query stops using the indexes listed here. "
        "Regenerate with `make db-docs`. Where a table is tiny in this database (learning paths: the load "
        "test only reads them), the planner rightly scans it; the test prices sequential scans out to check "
        "the index would serve once it grows. Vector literals are shortened.\n\n" + "\n".join(sections)
    )


@dataclass
class SweepRow:
    m: int
    ef_construction: int
    build_s: float
    index_mb: float
    ef_search: int
    recall_at_10: float
    recall_at_40: float
    epsilon_recall_at_40: float
    mean_ms: float
    p95_ms: float


NEAREST = "SELECT embedding <=> $1 AS d FROM hnsw_sweep ORDER BY embedding <=> $1 LIMIT $2"


async def nearest(conn: asyncpg.Connection, queries: list[str],
                  k: int) -> tuple[list[list[float]], list[float]]:
    """Each query's k nearest distances (ids do not matter: equal distances tie), and its latency."""
    results, timings = [], []
    for vector in queries:
        started = time.perf_counter()
        rows = await conn.fetch(NEAREST, vector, k)
        timings.append((time.perf_counter() - started) * 1000)
        results.append([r["d"] for r in rows])
    return results, timings


def recall(found: list[list[float]], exact: list[list[float]], k: int, epsilon: float = 0.0) -> float:
    """Share of the index's top k within (1 + epsilon) x the exact k-th distance (ann-benchmarks' k-nn
    recall at epsilon 0, ties counting as found; its "epsilon" recall at 0.01)."""
    pairs = zip(found, exact, strict=True)
    return statistics.mean(sum(d <= e[k - 1] * (1 + epsilon) + 1e-6 for d in f[:k]) / k for f, e in pairs)


def minilm_corpus(rows: list[asyncpg.Record]) -> tuple[list[str], list[str]]:
    """The catalogue (title and tags) and learners' questions (the labelled paraphrase set), embedded with
    all-MiniLM-L6-v2: a real model's geometry, which the fake LLM's hashed embeddings do not have."""
    from loadrun.cache_quality import labelled, local_embedder

    embed = local_embedder()
    texts = [f"{r['title']}. {', '.join(r['tags'])}" for r in rows]
    vectors = [v for start in range(0, len(texts), 1024) for v in embed(texts[start:start + 1024])]
    remembered, lookups = labelled()
    questions = embed(remembered + [q for q, _ in lookups])
    return [vector_literal(list(v)) for v in vectors], [vector_literal(list(q)) for q in questions]


async def sweep(dsn: str) -> tuple[list[SweepRow], int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")  # the whole graph in memory while building
        await conn.execute("DROP TABLE IF EXISTS hnsw_sweep")
        await conn.execute("CREATE UNLOGGED TABLE hnsw_sweep (id text, embedding vector(384))")
        rows = await conn.fetch("SELECT id, title, tags FROM videos ORDER BY id")
        corpus, queries = minilm_corpus(rows)
        await conn.executemany("INSERT INTO hnsw_sweep VALUES ($1, $2)",
                               [(r["id"], v) for r, v in zip(rows, corpus, strict=True)])
        exact, _ = await nearest(conn, queries, CANDIDATES)  # no index yet: exact, by sequential scan
        results = []
        for m, ef_construction in BUILDS:
            started = time.perf_counter()
            await conn.execute(
                f"CREATE INDEX hnsw_sweep_idx ON hnsw_sweep USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction})"
            )
            build_s = time.perf_counter() - started
            index_mb = await conn.fetchval("SELECT pg_relation_size('hnsw_sweep_idx')") / 2**20
            for ef_search in EF_SEARCH:
                await conn.execute(f"SET hnsw.ef_search = {ef_search}")
                await nearest(conn, queries[:20], CANDIDATES)  # warm
                found, timings = await nearest(conn, queries, CANDIDATES)
                results.append(SweepRow(m, ef_construction, build_s, index_mb, ef_search,
                                        recall(found, exact, 10), recall(found, exact, CANDIDATES),
                                        recall(found, exact, CANDIDATES, 0.01),
                                        statistics.mean(timings), statistics.quantiles(timings, n=20)[18]))
            await conn.execute("DROP INDEX hnsw_sweep_idx")
        await conn.execute("DROP TABLE hnsw_sweep")
        return results, len(rows), len(queries)
    finally:
        await conn.close()


def sweep_markdown(rows: list[SweepRow], size: int, queries: int) -> str:
    table = "\n".join(
        f"| {r.m} | {r.ef_construction} | {r.build_s:.0f} s | {r.index_mb:.0f} MB | {r.ef_search} | "
        f"{r.recall_at_10:.1%} | {r.recall_at_40:.1%} | {r.epsilon_recall_at_40:.1%} | {r.mean_ms:.2f} ms | "
        f"{r.p95_ms:.2f} ms |"
        for r in rows
    )
    return (
        "# HNSW parameters: recall against exact search\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d} on this machine (2 cores) with `make db-docs`: the load "
        f"test's {size:,}-video catalogue (title and tags) embedded with all-MiniLM-L6-v2 (384 dimensions, "
        f"the local provider's model) in a scratch table; {queries} learner questions from the labelled "
        f"paraphrase set as queries, each asking for its {CANDIDATES} nearest neighbours as the app's "
        "search does. Exact answers come from a sequential scan of the same table. Recall@k = share of "
        "the index's top k within the exact k-th distance (ties count, as in ann-benchmarks); 1 %-recall "
        "allows 1 % more than that distance. The generated catalogue is built from templates (44,090 "
        "distinct titles in 100,000; \"... (part 59)\" next to \"... (part 63)\"), so a question's 40 "
        "nearest videos are often a cluster of near-identical ones, and which of them come back is nearly "
        "arbitrary: recall at 0 understates what a learner would notice, 1 %-recall shows it. Latency is "
        "one client, warm cache, per query as seen by asyncpg.\n\n"
        "| m | ef_construction | build | index size | ef_search | recall@10 | recall@40 | 1 %-recall@40 "
        "| mean | p95 |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"{table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadrun.dbdocs", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["plans", "hnsw"])
    parser.add_argument("--state", type=Path, default=ROOT / ".estate-perf")
    args = parser.parse_args()
    with primary_and_replica(args.state) as (primary, replica):
        if args.what == "plans":
            (DOCS / "query-plans.md").write_text(asyncio.run(plans_markdown(replica)))
        else:
            rows, size, queries = asyncio.run(sweep(primary))
            existing = (DOCS / "hnsw.md").read_text() if (DOCS / "hnsw.md").exists() else ""
            choice = existing[existing.index("## Choice"):] if "## Choice" in existing else ""
            table = sweep_markdown(rows, size, queries)
            (DOCS / "hnsw.md").write_text(table + ("\n" + choice if choice else ""))
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
