"""Group commit: writes submitted while another is in flight go to the database together.

Each caller awaits the commit of its own batch, so nothing is acknowledged before it is stored; an
idle writer writes a lone item at once, so light load adds no latency. Under load, one statement and
one commit serve many requests: fewer round trips for the app and much less work for Postgres.

Under load the writer may also wait, at most ``max_wait_s``, until as many writes are pending as the
last batch held (MySQL's ``binlog_group_commit_sync_delay`` and ``..._no_delay_count``, with the count
taken from the last batch). A burst like the last one is written the moment it is complete, where a
fixed wait would leave the process idle once everyone has joined; after a lull one write waits and
the next goes at once again (docs/performance/ladder.md has the figures). The same batching serves
Redis round trips (core/ratelimit.py), where a batch is one pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from prometheus_client import Histogram

from chatwizard.core import metrics

Item = TypeVar("Item")
Result = TypeVar("Result")
# Writes a batch in one statement; returns one result per item, or the exception that item raises.
WriteBatch = Callable[[list[Item]], Awaitable[list[Result | Exception]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, name: str, write_batch: WriteBatch[Item, Result], max_batch: int = 256,
                 max_in_flight: int = 1, max_wait_s: float = 0.0,
                 sizes: Histogram = metrics.DB_BATCH_SIZE) -> None:
        self.name = name
        self.write_batch = write_batch
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight  # batches written at once: a slow commit does not stall all
        self.max_wait_s = max_wait_s
        self.sizes = sizes.labels(name)
        self.last_batch = 0
        self.pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self.writers: set[asyncio.Task[None]] = set()
        self.filled: asyncio.Event | None = None  # set while the writer waits for a batch to fill

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.filled is not None and len(self.pending) >= self.last_batch:
            self.filled.set()
        if len(self.writers) < self.max_in_flight:
            self.writers.add(asyncio.create_task(self._drain()))
        return await future  # a caller that gives up cancels only its own future; the write goes on

    async def _drain(self) -> None:
        try:
            await self._write_pending()
        finally:
            # Leave the set in the same step that found nothing pending. A done callback would run a
            # tick later, and a submit in between would see this writer as busy and wait for the next.
            self.writers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _write_pending(self) -> None:
        while self.pending:
            if self.max_wait_s and len(self.pending) < self.last_batch:
                await self._fill()
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch:]
            self.last_batch = len(batch)
            self.sizes.observe(len(batch))
            try:
                results = await self.write_batch([item for item, _ in batch])
            except Exception as exc:  # the whole statement failed: every caller in it sees why
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _fill(self) -> None:
        # With several writers in flight a later one may replace the event: the earlier then waits out
        # max_wait_s, no longer.
        self.filled = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.filled.wait(), self.max_wait_s)
        self.filled = None

    async def close(self) -> None:
        """Let batches in flight finish (at shutdown), so no accepted write is dropped."""
        while self.writers:
            await asyncio.gather(*self.writers, return_exceptions=True)
