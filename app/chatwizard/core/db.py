"""Postgres access: a primary pool for writes, a replica pool for reads, with fallback.

Reads go to the replica while it answers and its replay lag stays under the configured limit; a
background check (every ``replica_check_interval_s``) decides. If a read on the replica fails, the
same read is retried once on the primary, so a replica outage costs users nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

import asyncpg
import structlog

from chatwizard.core import metrics
from chatwizard.core.settings import Settings

log = structlog.get_logger(__name__)
Node = Literal["primary", "replica"]
T = TypeVar("T")
WAIT_THRESHOLD_S = 0.001  # an acquisition slower than this counts as "waited" for pool efficiency
# Pool gauges are sampled this often rather than on every acquire: counting a pool's idle connections
# walks all of them, and three gauge writes per query cost more than the query's own client work.
POOL_REPORT_INTERVAL_S = 1.0
# Failures that mean "the replica cannot serve", as opposed to a bad query.
REPLICA_FAILURES = (TimeoutError, OSError, ConnectionError, asyncpg.PostgresConnectionError,
                    asyncpg.CannotConnectNowError, asyncpg.InterfaceError)

REPLICA_LAG_SQL = """
SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END
"""


async def keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's RESET ALL round trip: the app only ever sets
    transaction-scoped state (SET LOCAL), which ends with its transaction."""


class InstrumentedPool:
    """An asyncpg pool that reports size, use, waiters, acquire time and failures per node."""

    def __init__(self, node: Node, dsn: str, settings: Settings) -> None:
        self.node = node
        self.dsn = dsn
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.waiting = 0

    async def open(self) -> None:
        s = self.settings
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn, min_size=s.db_pool_min, max_size=s.db_pool_max,
                statement_cache_size=s.db_statement_cache_size, command_timeout=s.db_command_timeout_s,
                timeout=s.db_command_timeout_s, reset=keep_session,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError):
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise
        metrics.DB_POOL_MAX.labels(self.node).set(s.db_pool_max)
        self.report()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        for gauge in (metrics.DB_POOL_SIZE, metrics.DB_POOL_IN_USE, metrics.DB_POOL_MAX):
            gauge.labels(self.node).set(0)

    def report(self) -> None:
        if self.pool is None:
            return
        size = self.pool.get_size()
        metrics.DB_POOL_SIZE.labels(self.node).set(size)
        metrics.DB_POOL_IN_USE.labels(self.node).set(size - self.pool.get_idle_size())
        metrics.DB_POOL_WAITING.labels(self.node).set(self.waiting)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        if self.pool is None:
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise ConnectionError(f"{self.node} pool is not open")
        started = time.perf_counter()
        self.waiting += 1
        try:
            conn = await self.pool.acquire(timeout=self.settings.db_command_timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise
        finally:
            self.waiting -= 1
        waited = time.perf_counter() - started
        metrics.DB_ACQUIRE.labels(self.node).observe(waited)
        metrics.DB_ACQUISITIONS.labels(self.node, "yes" if waited > WAIT_THRESHOLD_S else "no").inc()
        try:
            yield conn
        finally:
            await self.pool.release(conn)


class Database:
    """The app's view of Postgres: ``write`` on the primary, ``read`` on the best read node."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.primary = InstrumentedPool("primary", settings.database_url.get_secret_value(), settings)
        replica_url = settings.replica_url.get_secret_value() if settings.replica_url else None
        self.replica = InstrumentedPool("replica", replica_url, settings) if replica_url else None
        self.replica_healthy = False
        self.replica_lag_s: float | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.primary.open()
        metrics.DB_UP.labels("primary").set(1)
        if self.replica is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncio.TimeoutError):
                await self.replica.open()
            await self.check_replica()
        self._monitor = asyncio.create_task(self._monitor_nodes())
        self._reporter = asyncio.create_task(self._report_pools())

    async def close(self) -> None:
        for task in (self._monitor, self._reporter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.primary.close()
        if self.replica is not None:
            await self.replica.close()

    async def _monitor_nodes(self) -> None:
        """Keep chatwizard_db_up current (alerts read it) and the replica routing decision fresh."""
        while True:
            await asyncio.sleep(self.settings.replica_check_interval_s)
            await self.check_primary()
            if self.replica is not None:
                await self.check_replica()

    async def _report_pools(self) -> None:
        while True:
            await asyncio.sleep(POOL_REPORT_INTERVAL_S)
            for pool in (self.primary, self.replica):
                if pool is not None:
                    pool.report()

    async def check_primary(self) -> dict[str, Any]:
        try:
            await self._run(self.primary, lambda c: c.fetchval("SELECT 1"), count_read=False)
        except (TimeoutError, OSError, asyncpg.PostgresError, ConnectionError) as exc:
            metrics.DB_UP.labels("primary").set(0)
            return {"status": "down", "error": type(exc).__name__}
        metrics.DB_UP.labels("primary").set(1)
        return {"status": "ok"}

    async def check_replica(self) -> None:
        """Measure lag; route reads to the replica only while it is up and close enough."""
        assert self.replica is not None
        try:
            if self.replica.pool is None:
                await self.replica.open()
            async with self.replica.acquire() as conn:
                lag = float(await conn.fetchval(REPLICA_LAG_SQL))
        except (TimeoutError, OSError, asyncpg.PostgresError, ConnectionError) as exc:
            if self.replica_healthy:
                log.warning("replica_unavailable", error=type(exc).__name__)
            self.replica_healthy, self.replica_lag_s = False, None
            metrics.DB_UP.labels("replica").set(0)
            return
        self.replica_lag_s = lag
        metrics.DB_REPLICA_LAG.set(lag)
        metrics.DB_UP.labels("replica").set(1)
        healthy = lag <= self.settings.replica_max_lag_s
        if healthy != self.replica_healthy:
            log.info("replica_routing", reads_on_replica=healthy, lag_s=round(lag, 3))
        self.replica_healthy = healthy

    def read_node(self) -> InstrumentedPool:
        if self.replica is not None and self.replica_healthy and self.replica.pool is not None:
            return self.replica
        return self.primary

    async def read(self, query: Callable[[asyncpg.Connection], Awaitable[T]], *, fresh: bool = False) -> T:
        """Run a read-only query on the replica when it is fit, else (or on failure) on the primary.

        ``fresh=True`` reads the primary: for a user's own data, which they may have written a moment
        ago (read-your-writes); catalogue reads tolerate the replica's lag.
        """
        node = self.primary if fresh else self.read_node()
        if node is self.replica:
            try:
                return await self._run(node, query)
            except REPLICA_FAILURES as exc:
                log.warning("replica_read_failed", error=type(exc).__name__)
                self.replica_healthy = False
                metrics.DB_QUERY_ERRORS.labels("replica", type(exc).__name__).inc()
        return await self._run(self.primary, query)

    async def write(self, query: Callable[[asyncpg.Connection], Awaitable[T]], *,
                    transaction: bool = True) -> T:
        """Run a query on the primary inside a transaction (single statements are atomic already:
        `transaction=False` saves the BEGIN and COMMIT round trips)."""

        async def in_transaction(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await query(conn)

        return await self._run(self.primary, in_transaction if transaction else query, count_read=False)

    async def _run(self, node: InstrumentedPool, query: Callable[[asyncpg.Connection], Awaitable[T]],
                   count_read: bool = True) -> T:
        try:
            async with node.acquire() as conn:
                result = await query(conn)
        except asyncpg.PostgresError as exc:
            metrics.DB_QUERY_ERRORS.labels(node.node, type(exc).__name__).inc()
            raise
        if count_read:
            metrics.DB_READS.labels(node.node).inc()
        return result

    async def health(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"primary": await self.check_primary()}
        if self.replica is None:
            checks["replica"] = {"status": "not_configured"}
        else:
            await self.check_replica()
            if self.replica_healthy:
                checks["replica"] = {"status": "ok", "lag_s": self.replica_lag_s}
            elif self.replica_lag_s is not None:
                checks["replica"] = {"status": "lagging", "lag_s": self.replica_lag_s,
                                     "reads_served_by": "primary"}
            else:
                checks["replica"] = {"status": "down", "reads_served_by": "primary"}
        return checks
