"""Every hot query keeps using its index. The test catalogue is small enough that the planner would
rightly prefer sequential scans, so they are priced out: a plan still scans a table only when no index
can serve the query (a dropped index, or SQL rewritten so the index no longer applies)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from loadrun.hot_queries import HOT_QUERIES, HotQuery, explain, indexes_used, nodes


@pytest.mark.parametrize("query", HOT_QUERIES, ids=lambda q: q.name)
async def test_hot_query_uses_its_indexes(databases, catalogue: Path, query: HotQuery):
    conn = await asyncpg.connect(databases.primary.dsn)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = await explain(conn, query)
    finally:
        await conn.close()
    missing = query.indexes - indexes_used(plan)
    assert not missing, f"{query.name} no longer uses {sorted(missing)}"
    scanned = [n["Relation Name"] for n in nodes(plan["Plan"]) if n["Node Type"] == "Seq Scan"]
    assert not scanned, f"{query.name} scans {scanned} sequentially"
