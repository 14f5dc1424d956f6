"""Postgres access: a primary pool for writes, a replica pool for reads, with fallback.

Reads go to the replica while it answers and its replay lag stays under the configured limit; a
background check (every ``replica_check_interval_s``) decides. If a read on the replica fails, the
same read is retried once on the primary, so a replica outage costs users nothing.

A node can also hang: its processes stopped, its host frozen, the network silently dropping packets.
Connections stay open and queries simply never finish, so errors never come. The check therefore
probes each node on a connection of its own with a short deadline (``db_connect_timeout_s``); a
node that misses it is marked down at once: its pool is terminated, which ends the queries stuck on
it, and requests stop waiting for it. Reads then go to the other node; writes fail fast with 503 and
``Retry-After`` until the primary answers again (or a promoted replica does, when the primary URL
lists both hosts with ``target_session_attrs=read-write``).
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
# Failures that mean "the node cannot serve", as opposed to a bad query.
CONNECTION_FAILURES = (TimeoutError, OSError, ConnectionError, asyncpg.PostgresConnectionError,
                       asyncpg.CannotConnectNowError)
REPLICA_FAILURES = (*CONNECTION_FAILURES, asyncpg.InterfaceError)
# "The primary cannot take writes now" (down, hung, or a standby): a request may answer without writing.
PRIMARY_FAILURES = (*CONNECTION_FAILURES, asyncpg.ReadOnlySQLTransactionError)
# Failures of a health probe: any of those, or a server that answers with an error (e.g. "the
# database system is starting up", or no host in a multi-host URL accepting writes yet).
NODE_FAILURES = (*REPLICA_FAILURES, asyncpg.PostgresError)



STALL_FACTOR = 1.5


def connection_gone(conn: asyncpg.Connection) -> bool:
    """Closed, or already taken back by a pool that was terminated under the query (a failover race:
    asking a released connection anything raises, which would have turned a 503 into a 500)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


class ProbeStalled(Exception):
    """A probe timed out because this process stalled, not the node: no verdict."""


class NodeUnavailable(ConnectionError):
    """The node is marked down: the caller fails at once instead of waiting on it."""


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
        self.down = False
        self._waiters: set[asyncio.Task[Any]] = set()  # requests waiting for a connection
        self._probe_conn: asyncpg.Connection | None = None
        self._probing: asyncio.Future[Any] | None = None

    async def open(self) -> None:
        s = self.settings
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn, min_size=s.db_pool_min, max_size=s.db_pool_max,
                statement_cache_size=s.db_statement_cache_size, command_timeout=s.db_command_timeout_s,
                timeout=s.db_connect_timeout_s, reset=keep_session,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError):
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise
        self.down = False
        metrics.DB_POOL_MAX.labels(self.node).set(s.db_pool_max)
        self.report()

    async def close(self) -> None:
        self._close_probe()
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
        pool = self.pool
        if pool is None or self.down:
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise NodeUnavailable(f"the {self.node} database is not answering")
        started = time.perf_counter()
        self.waiting += 1
        task = asyncio.current_task()
        assert task is not None
        self._waiters.add(task)
        try:
            conn = await pool.acquire(timeout=self.settings.db_command_timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise
        except asyncio.CancelledError:
            if not self.down or task.uncancel():  # cancelled by someone else, not by mark_down
                raise
            metrics.DB_CONNECTION_FAILURES.labels(self.node).inc()
            raise NodeUnavailable(f"the {self.node} database stopped answering") from None
        finally:
            self.waiting -= 1
            self._waiters.discard(task)
        waited = time.perf_counter() - started
        metrics.DB_ACQUIRE.labels(self.node).observe(waited)
        metrics.DB_ACQUISITIONS.labels(self.node, "yes" if waited > WAIT_THRESHOLD_S else "no").inc()
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def probe(self, sql: str) -> Any:
        """Run ``sql`` on a connection of the probe's own (a full pool must not look like a dead node),
        within ``db_connect_timeout_s`` for connecting and again for the answer. Callers arriving while
        a probe runs (the monitor, /readyz) share its outcome."""
        if self._probing is None or self._probing.done():
            self._probing = asyncio.ensure_future(self._probe_once(sql))
        return await asyncio.shield(self._probing)

    async def _probe_once(self, sql: str) -> Any:
        timeout = self.settings.db_connect_timeout_s
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                if self._probe_conn is None or self._probe_conn.is_closed():
                    self._probe_conn = await asyncpg.connect(self.dsn, statement_cache_size=0)
                return await self._probe_conn.fetchval(sql)
        except TimeoutError:
            self._close_probe()
            # A deadline that fired far too late means this process's own loop was blocked (e.g. by a
            # model loading): the answer may be waiting unread, so the probe says nothing of the node.
            if loop.time() - started > timeout * STALL_FACTOR:
                raise ProbeStalled(f"the event loop stalled during the {self.node} probe") from None
            raise
        except BaseException:
            self._close_probe()
            raise

    def _close_probe(self) -> None:
        if self._probe_conn is not None:
            self._probe_conn.terminate()  # no goodbye: the node may not be answering
            self._probe_conn = None

    def mark_down(self) -> None:
        """Stop waiting for a node that does not answer: end the queries in flight on it (their callers
        get a connection error: reads retry elsewhere, writes answer 503) and those queued for it."""
        if self.down:
            return
        self.down = True
        log.warning("db_node_marked_down", node=self.node)
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None
        for task in self._waiters:
            task.cancel()


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
        """Keep chatwizard_db_up current (alerts read it) and the routing decisions fresh. Both nodes are
        probed at once, so a hung one does not delay noticing the other."""
        while True:
            await asyncio.sleep(self.settings.replica_check_interval_s)
            await asyncio.gather(self.check_primary(), *([self.check_replica()] if self.replica else []))

    async def _report_pools(self) -> None:
        while True:
            await asyncio.sleep(POOL_REPORT_INTERVAL_S)
            for pool in (self.primary, self.replica):
                if pool is not None:
                    pool.report()

    async def check_primary(self) -> dict[str, Any]:
        try:
            await self._probe(self.primary, "SELECT 1")
        except ProbeStalled:
            return {"status": "down" if self.primary.down else "ok"}
        except NODE_FAILURES as exc:
            metrics.DB_UP.labels("primary").set(0)
            return {"status": "down", "error": type(exc).__name__}
        metrics.DB_UP.labels("primary").set(1)
        return {"status": "ok"}

    async def check_replica(self) -> None:
        """Measure lag; route reads to the replica only while it is up and close enough."""
        assert self.replica is not None
        try:
            lag = float(await self._probe(self.replica, REPLICA_LAG_SQL))
        except ProbeStalled:
            return
        except NODE_FAILURES as exc:
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

    @staticmethod
    async def _probe(node: InstrumentedPool, sql: str) -> Any:
        """Ask the node; a node that fails to answer in time is marked down, one that answers again gets
        a fresh pool."""
        try:
            result = await node.probe(sql)
            if node.pool is None:
                await node.open()
        except NODE_FAILURES:
            node.mark_down()
            raise
        return result

    def read_node(self) -> InstrumentedPool:
        if self.replica is not None and self.replica_healthy and not self.replica.down:
            return self.replica
        return self.primary

    async def read(self, query: Callable[[asyncpg.Connection], Awaitable[T]], *, fresh: bool = False) -> T:
        """Run a read-only query on the replica when it is fit, else (or on failure) on the primary.

        ``fresh=True`` reads the primary: for a user's own data, which they may have written a moment
        ago (read-your-writes); catalogue reads tolerate the replica's lag. While the primary is marked
        down, those reads too are served by a healthy replica: a little stale beats unavailable.
        """
        node = self.primary if fresh and not self.primary.down else self.read_node()
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
                try:
                    result = await query(conn)
                except asyncpg.InterfaceError as exc:
                    # The connection went under the query: the node died, or mark_down terminated it.
                    if node.down or connection_gone(conn):
                        raise NodeUnavailable(f"the {node.node} database stopped answering") from exc
                    raise
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
