"""Business activity: daily active users, session durations and LLM cost per active user.

On a user's request the process pushes "seen now" to Redis at most once a minute per user (a
HyperLogLog for daily actives, sorted sets for session start/last-seen). Every 30 s one worker
(a Redis lock picks it) closes sessions idle for 30 minutes, observing their duration, and refreshes
the gauges. Without Redis the figures pause; requests are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from chatwizard.core import metrics
from chatwizard.core.cache import Cache

PUSH_EVERY_S = 60
SESSION_IDLE_S = 30 * 60
SWEEP_EVERY_S = 30
LAST_SEEN, STARTED = "cw:sess:last", "cw:sess:start"


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class Activity:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.pushed: dict[UUID, float] = {}

    async def seen(self, user_id: UUID) -> None:
        now = time.time()
        if now - self.pushed.get(user_id, 0.0) < PUSH_EVERY_S:
            return
        self.pushed[user_id] = now
        member = str(user_id)

        async def push(r: Any) -> Any:
            async with r.pipeline(transaction=False) as pipe:
                pipe.pfadd(f"cw:dau:{today()}", member)
                pipe.expire(f"cw:dau:{today()}", 3 * 86400)
                pipe.zadd(STARTED, {member: now}, nx=True)
                pipe.zadd(LAST_SEEN, {member: now})
                return await pipe.execute()

        await self.cache.call("activity", push, None)

    async def add_cost(self, usd: float) -> None:
        if usd > 0:
            key = f"cw:cost:{today()}"
            await self.cache.call("activity", lambda r: r.incrbyfloat(key, usd), None)

    async def sweep(self) -> None:
        """Close idle sessions and refresh the gauges; only the worker holding the lock does it."""
        cutoff = time.time() - SESSION_IDLE_S
        # Every worker forgets its own stale push times, lock or not: only the sweeper needs the lock.
        self.pushed = {u: t for u, t in self.pushed.items() if t > cutoff}
        locked = await self.cache.call(
            "activity", lambda r: r.set("cw:sess:sweeper", "1", nx=True, ex=SWEEP_EVERY_S - 5), None)
        if not locked:
            return
        idle = await self.cache.call("activity", lambda r: r.zrangebyscore(LAST_SEEN, "-inf", cutoff,
                                                                          withscores=True), [])
        if idle:
            members = [m for m, _ in idle]
            starts = await self.cache.call("activity", lambda r: r.zmscore(STARTED, members), [])
            for (_, last), start in zip(idle, starts, strict=False):
                if start is not None:
                    metrics.SESSION_DURATION.observe(max(0.0, last - start))
            await self.cache.call("activity", lambda r: r.zrem(LAST_SEEN, *members), 0)
            await self.cache.call("activity", lambda r: r.zrem(STARTED, *members), 0)
        await self.refresh_gauges()

    async def refresh_gauges(self) -> None:
        day = today()
        actives = await self.cache.call("activity", lambda r: r.pfcount(f"cw:dau:{day}"), None)
        cost = await self.cache.call("activity", lambda r: r.get(f"cw:cost:{day}"), None)
        if actives is None:
            return
        metrics.ACTIVE_USERS.labels("1d").set(actives)
        metrics.COST_PER_USER.set(float(cost or 0) / actives if actives else 0.0)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            with contextlib.suppress(Exception):  # bookkeeping must never take a worker down
                await self.sweep()
