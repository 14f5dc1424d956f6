"""Redis access that degrades instead of failing.

Every call returns a neutral value (None / False / empty) when Redis is unreachable; after a failure
the app stops trying for ``redis_retry_interval_s`` so a dead Redis costs no latency per request.
The fallback is visible: ``chatwizard_redis_fallback_active`` and ``/readyz``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from chatwizard.core import metrics
from chatwizard.core.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Cache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: redis.Redis = redis.Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            health_check_interval=30,
        )
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, operation: str, command: Callable[[redis.Redis], Awaitable[T]],
                   default: T) -> T:
        """Run one Redis command; on failure count it, enter fallback mode and return ``default``."""
        if not self.available:
            return default
        try:
            result = await command(self.client)
        except (RedisError, OSError) as exc:
            self.mark_down(operation, exc)
            return default
        if self._down_until:
            log.info("redis_recovered")
            self._down_until = 0.0
            metrics.REDIS_FALLBACK.set(0)
        return result

    def mark_down(self, operation: str, exc: BaseException | None = None) -> None:
        """Count a failure and serve without Redis for ``redis_retry_interval_s``."""
        metrics.REDIS_ERRORS.labels(operation).inc()
        if self._down_until == 0.0:
            log.warning("redis_unavailable", operation=operation, error=type(exc).__name__ if exc else None)
        self._down_until = time.monotonic() + self.settings.redis_retry_interval_s
        metrics.REDIS_FALLBACK.set(1)

    async def get_json(self, key: str) -> Any | None:
        raw = await self.call("get", lambda r: r.get(key), None)
        return orjson.loads(raw) if raw is not None else None

    async def set_json(self, key: str, value: Any, ttl_s: int) -> bool:
        return bool(await self.call("set", lambda r: r.set(key, orjson.dumps(value), ex=ttl_s), False))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self.call("delete", lambda r: r.delete(*keys), 0))

    async def health(self) -> dict[str, Any]:
        self._down_until = 0.0  # a readiness probe always tries for real
        ok = await self.call("ping", lambda r: r.ping(), False)
        return {"status": "ok"} if ok else {"status": "down", "fallback": "serving without cache"}
