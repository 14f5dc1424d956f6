"""Redis access: a burst larger than the connection pool waits its turn, a restarted Redis is used at
once, only a Redis that does not answer puts the process in fallback mode, and closing never hangs."""

from __future__ import annotations

import asyncio
import random

from pydantic import SecretStr

from chatwizard.core.cache import Cache
from chatwizard.core.settings import Settings


async def test_a_burst_beyond_the_pool_waits_instead_of_falling_back(redis_node):
    cache = Cache(Settings(redis_url=SecretStr(redis_node.url), redis_pool_max=2, redis_timeout_s=0.5))
    try:
        # Six commands that each hold a connection for 100 ms, through two connections: three rounds.
        results = await asyncio.gather(*(
            cache.call("blpop", lambda r: r.blpop(["cw:test:empty"], timeout=0.1), "fallback")
            for _ in range(6)
        ))
        assert results == [None] * 6, "a command was answered by the fallback, not by Redis"
        assert cache.available
    finally:
        await cache.close()


async def test_a_restarted_redis_is_used_at_once_without_a_fallback_spell(redis_node):
    cache = Cache(Settings(redis_url=SecretStr(redis_node.url)))
    try:
        assert await cache.set_json("cw:test:before", 1, ttl_s=60)  # a pooled connection, now open
        redis_node.stop()
        redis_node.start()
        # The pooled connection died with the old server; the command must not fail on it.
        assert await cache.set_json("cw:test:after", 2, ttl_s=60)
        assert cache.available
    finally:
        await cache.close()


async def test_closing_never_waits_on_the_invalidation_listener(redis_node):
    """A worker's shutdown: close lands at any moment of the listener's subscribe-and-read cycle."""
    rng = random.Random(7)
    for attempt in range(100):
        cache = Cache(Settings(redis_url=SecretStr(redis_node.url)))
        cache.start_listening()
        await asyncio.sleep(rng.random() * 0.01)
        closing = asyncio.ensure_future(cache.close())
        done, _ = await asyncio.wait({closing}, timeout=3)
        assert done, f"close still waiting on the listener after 3 s (attempt {attempt})"
