"""Redis access that degrades instead of failing.

Every call returns a neutral value (None / False / empty) when Redis is unreachable; after a failure
the app stops trying for ``redis_retry_interval_s`` so a dead Redis costs no latency per request.
The fallback is visible: ``chatwizard_redis_fallback_active`` and ``/readyz``.

Hot entries (API key lookups, popular answers) are also kept in process memory for a few seconds:
the *near cache*, which saves a Redis round trip per request. It stays coherent because every
delete is published on one channel that each process listens to; while a process is not subscribed
(Redis down, reconnecting) it does not use its near cache at all, so no invalidation can be missed.
The same channel wakes whoever watches a key (an open WebSocket watches its API key's lookup entry,
so a revocation in any process ends it); losing or regaining the subscription wakes every watcher,
since a delete may have gone unheard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from chatwizard.core import metrics
from chatwizard.core.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")
INVALIDATIONS = "cw:invalidate"  # the channel deletes are published on, as a JSON list of keys


class Cache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # A blocking pool: a burst beyond redis_pool_max waits for a free connection (up to the timeout)
        # rather than failing at once, which would put the whole process in fallback mode. A command
        # that fails on a dead pooled connection (Redis restarted) is retried once on a fresh one; at
        # worst a command that reached a crashing server counts twice (one rate-limit hit too many).
        self.client: redis.Redis = redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(
            settings.redis_url.get_secret_value(),
            max_connections=settings.redis_pool_max,
            timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            health_check_interval=30,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        ))
        self._down_until = 0.0
        self.near: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # key -> (expires, value), LRU
        self.near_generation = 0  # bumped per invalidation: a read that raced one is not kept
        self.listening = False
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self.watchers: dict[str, set[asyncio.Event]] = {}

    def start_listening(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """Drop from the near cache whatever any process deletes; runs for the process's life."""
        while not self._closing:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(INVALIDATIONS)
                while not self._closing:
                    message = await pubsub.get_message(timeout=10.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.listening = True
                        self.wake(*self.watchers)
                    elif message["type"] == "message":
                        self.near_generation += 1
                        for key in orjson.loads(message["data"]):
                            self.near.pop(key, None)
                            self.wake(key)
            except (RedisError, OSError, ValueError):  # ValueError: a message that is not a JSON list
                pass
            finally:
                if self.listening:
                    self.wake(*self.watchers)
                self.listening = False
                self.near.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            if not self._closing:
                await asyncio.sleep(self.settings.redis_retry_interval_s)

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set when any process deletes ``key`` (or one may have, unheard); the watcher clears it."""
        event = asyncio.Event()
        self.watchers.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            self.watchers[key].discard(event)
            if not self.watchers[key]:
                del self.watchers[key]

    def wake(self, *keys: str) -> None:
        for key in keys:
            for event in self.watchers.get(key, ()):
                event.set()

    @property
    def near_usable(self) -> bool:
        return self.listening and self.available

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def close(self) -> None:
        self._closing = True
        # A cancel that lands in redis-py's timed read can be swallowed there (redis-py #2551): the
        # read returns as if nothing happened. The flag ends the loop at its next turn, and cancelling
        # again reaches whatever it awaits after that (closing the pub/sub, the retry sleep).
        while self._listener is not None and not self._listener.done():
            self._listener.cancel()
            await asyncio.wait({self._listener}, timeout=0.1)
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

    async def get_json(self, key: str, near: bool = False,
                       parse: Callable[[Any], Any] | None = None) -> Any | None:
        """The value at ``key``, made by ``parse`` from the stored JSON if given; ``near=True`` may serve
        it from process memory, parsed once (callers must not mutate what they get back)."""
        if near and self.near_usable:
            entry = self.near.get(key)
            if entry is not None and entry[0] > time.monotonic():
                self.near.move_to_end(key)
                metrics.NEAR_CACHE.labels("hit").inc()
                return entry[1]
            metrics.NEAR_CACHE.labels("miss").inc()
        generation = self.near_generation
        raw = await self.call("get", lambda r: r.get(key), None)
        if raw is None:
            return None
        value = orjson.loads(raw) if parse is None else parse(orjson.loads(raw))
        if near and self.near_usable and generation == self.near_generation:
            self.near[key] = (time.monotonic() + self.settings.near_cache_ttl_s, value)
            self.near.move_to_end(key)
            if len(self.near) > self.settings.near_cache_entries:
                self.near.popitem(last=False)
        return value

    async def set_json(self, key: str, value: Any, ttl_s: int) -> bool:
        return bool(await self.call("set", lambda r: r.set(key, orjson.dumps(value), ex=ttl_s), False))

    async def delete(self, *keys: str) -> int:
        """Delete ``keys`` and drop them from every process's near cache."""
        if not keys:
            return 0
        for key in keys:
            self.near.pop(key, None)

        async def delete_and_publish(r: redis.Redis) -> int:
            async with r.pipeline(transaction=False) as pipe:
                pipe.delete(*keys)
                pipe.publish(INVALIDATIONS, orjson.dumps(keys))
                deleted, _ = await pipe.execute()
            return int(deleted)

        return await self.call("delete", delete_and_publish, 0)

    async def health(self) -> dict[str, Any]:
        self._down_until = 0.0  # a readiness probe always tries for real
        ok = await self.call("ping", lambda r: r.ping(), False)
        return {"status": "ok"} if ok else {"status": "down", "fallback": "serving without cache"}
