"""Rate limits: moving windows in Redis (one atomic Lua script), per process without it.

Per user by tier (free: 100 requests/hour, the seed's figure), over all the user's keys and every
channel: a REST call, an SSE stream and each question on a WebSocket count one each. Per client
address for the public calendar feed, and a tighter per-address limit on failed authentication. When
Redis is unreachable each process enforces the same limits in memory (the `limits` library): looser
across many processes, never unlimited.

The Redis side is our own script rather than `limits`' because that library needs two round trips
per request (``hit``, then ``get_window_stats`` for the RateLimit headers); this script does both in
one, with the same moving-window model: a list of hit timestamps, newest first, trimmed to the limit.
Checks that arrive while another is on its way to Redis go together in the next pipeline (one round
trip for many requests, core/batching.py); each is still counted and answered on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from fastapi import HTTPException
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import NoScriptError, RedisError

from chatwizard.core import metrics
from chatwizard.core.batching import GroupCommit
from chatwizard.core.cache import Cache
from chatwizard.core.settings import Settings

KEY_PREFIX = "cw:rl"

# KEYS[1]: the hit timestamps, newest first. ARGV: now, limit, window (s).
# Returns {allowed (0|1), hits in the window, the oldest hit in the window (or now)}.
MOVING_WINDOW = """
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local since = now - window
local allowed = 0
local edge = redis.call('lindex', KEYS[1], limit - 1)
if not edge or tonumber(edge) < since then
  redis.call('lpush', KEYS[1], ARGV[1])
  redis.call('ltrim', KEYS[1], 0, limit - 1)
  redis.call('expire', KEYS[1], math.ceil(window))
  allowed = 1
end
local low, high, oldest = 0, redis.call('llen', KEYS[1]) - 1, -1
while low <= high do
  local mid = math.floor((low + high) / 2)
  if tonumber(redis.call('lindex', KEYS[1], mid)) >= since then
    oldest = mid
    low = mid + 1
  else
    high = mid - 1
  end
end
if oldest < 0 then
  return {allowed, 0, ARGV[1]}
end
return {allowed, oldest + 1, redis.call('lindex', KEYS[1], oldest)}
"""


# One script call: (key, now, limit, window s) -> [allowed, hits in the window, oldest hit].
Call = tuple[str, float, int, int]
Outcome = list[bytes | int]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_s)}


class RateLimiter:
    def __init__(self, settings: Settings, cache: Cache) -> None:
        self.cache = cache
        self.script = cache.client.register_script(MOVING_WINDOW)
        self.batches: GroupCommit[Call, Outcome] = GroupCommit("ratelimit", self.run_calls,
                                                             sizes=metrics.REDIS_BATCH_SIZE)
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.tiers: dict[str, RateLimitItem] = {
            "free": parse(settings.rate_limit_free), "pro": parse(settings.rate_limit_pro),
            "admin": parse(settings.rate_limit_admin), "service": parse(settings.rate_limit_service),
        }
        self.anonymous = parse(settings.rate_limit_anonymous)
        self.auth_failures = parse(settings.rate_limit_auth_failures)
        self.sign_in_mail = parse(settings.rate_limit_sign_in_mail)

    async def hit(self, item: RateLimitItem, *identity: str) -> Verdict:
        if not self.cache.available:
            return await self.hit_locally(item, *identity)
        window = item.get_expiry()
        key = "/".join((KEY_PREFIX, *identity, str(item.amount), str(window)))
        now = time.time()
        try:
            allowed, hits, oldest = await self.batches.submit((key, now, item.amount, window))
        except (RedisError, OSError) as exc:
            self.cache.mark_down("ratelimit", exc)
            return await self.hit_locally(item, *identity)
        reset_s = max(1, int(float(oldest) + window - now))
        return Verdict(bool(allowed), item.amount, max(0, item.amount - int(hits)), reset_s)

    async def run_calls(self, calls: list[Call]) -> list[Outcome | Exception]:
        """A batch of script calls in one pipeline; a Redis that lost the script (restarted) gets it again."""
        results = await self.pipeline(calls)
        if any(isinstance(r, NoScriptError) for r in results):
            await self.cache.client.script_load(MOVING_WINDOW)
            retried = iter(await self.pipeline([c for c, r in zip(calls, results, strict=True)
                                                if isinstance(r, NoScriptError)]))
            results = [next(retried) if isinstance(r, NoScriptError) else r for r in results]
        return results

    async def pipeline(self, calls: list[Call]) -> list[Outcome | Exception]:
        async with self.cache.client.pipeline(transaction=False) as pipe:
            for key, *args in calls:
                pipe.evalsha(self.script.sha, 1, key, *args)
            return await pipe.execute(raise_on_error=False)

    async def hit_locally(self, item: RateLimitItem, *identity: str) -> Verdict:
        allowed = await self.local.hit(item, *identity)
        reset, remaining = await self.local.get_window_stats(item, *identity)
        return Verdict(allowed, item.amount, remaining, max(1, int(reset - time.time())))

    async def check_user(self, tier: str, user_id: UUID) -> Verdict:
        """Count one request or question of a user (whichever key and channel it came by)."""
        return await self.check(self.tiers[tier], "user", str(user_id))

    async def check(self, item: RateLimitItem, scope: str, *identity: str) -> Verdict:
        """Count one request; raise 429 (with Retry-After and RateLimit headers) past the limit."""
        verdict = await self.hit(item, scope, *identity)
        if not verdict.allowed:
            metrics.RATE_LIMITED.labels(scope).inc()
            raise HTTPException(429, detail=f"rate limit exceeded: {item}; retry in {verdict.reset_s} s",
                                headers={"Retry-After": str(verdict.reset_s), **verdict.headers()})
        return verdict
