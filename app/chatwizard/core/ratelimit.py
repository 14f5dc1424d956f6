"""Rate limits: moving windows in Redis (atomic Lua, the `limits` library), per process without it.

Per API key by tier (free: 100 requests/hour, the seed's figure), per client address for the public
calendar feed, and a tighter per-address limit on failed authentication. When Redis is unreachable
each process enforces the same limits in memory: looser across many processes, never unlimited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import HTTPException
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from chatwizard.core import metrics
from chatwizard.core.cache import Cache
from chatwizard.core.settings import Settings

KEY_PREFIX = "cw:rl"


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
        url = "async+" + settings.redis_url.get_secret_value()
        self.shared = MovingWindowRateLimiter(RedisStorage(
            url, implementation="redispy", key_prefix=KEY_PREFIX, socket_timeout=settings.redis_timeout_s))
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.tiers: dict[str, RateLimitItem] = {
            "free": parse(settings.rate_limit_free), "pro": parse(settings.rate_limit_pro),
            "admin": parse(settings.rate_limit_admin), "service": parse(settings.rate_limit_service),
        }
        self.anonymous = parse(settings.rate_limit_anonymous)
        self.auth_failures = parse(settings.rate_limit_auth_failures)

    async def hit(self, item: RateLimitItem, *identity: str) -> Verdict:
        limiter = self.shared if self.cache.available else self.local
        try:
            allowed = await limiter.hit(item, *identity)
            reset, remaining = await limiter.get_window_stats(item, *identity)
        except (RedisError, OSError):
            self.cache.mark_down("ratelimit")
            return await self.hit(item, *identity)
        return Verdict(allowed, item.amount, remaining, max(1, int(reset - time.time())))

    async def check(self, item: RateLimitItem, scope: str, *identity: str) -> Verdict:
        """Count one request; raise 429 (with Retry-After and RateLimit headers) past the limit."""
        verdict = await self.hit(item, scope, *identity)
        if not verdict.allowed:
            metrics.RATE_LIMITED.labels(scope).inc()
            raise HTTPException(429, detail=f"rate limit exceeded: {item}; retry in {verdict.reset_s} s",
                                headers={"Retry-After": str(verdict.reset_s), **verdict.headers()})
        return verdict
