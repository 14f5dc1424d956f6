"""Redis access: a burst larger than the connection pool waits its turn, a restarted Redis is used at
once, only a Redis that does not answer puts the process in fallback mode, and closing never hangs."""

from __future__ import annotations

import asyncio
import random

from limits import parse
from prometheus_client import REGISTRY
from pydantic import SecretStr

from chatwizard.core.cache import Cache
from chatwizard.core.ratelimit import RateLimiter
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


async def test_concurrent_rate_limit_checks_share_round_trips_and_each_is_counted(redis_node):
    cache = Cache(Settings(redis_url=SecretStr(redis_node.url)))
    limiter = RateLimiter(cache.settings, cache)
    ten_a_minute = parse("10/minute")
    batches = {"batcher": "ratelimit"}
    before = REGISTRY.get_sample_value("chatwizard_redis_batch_size_count", batches) or 0.0
    verdicts = await asyncio.gather(*(limiter.hit(ten_a_minute, "key", "shared") for _ in range(30)))
    trips = REGISTRY.get_sample_value("chatwizard_redis_batch_size_count", batches) - before
    assert sum(v.allowed for v in verdicts) == 10
    assert sorted(v.remaining for v in verdicts if v.allowed) == list(range(10))
    assert trips < 30, "checks waiting for a round trip go together in the next one"

    await cache.client.script_flush()  # what a restarted Redis without persistence looks like
    again = await limiter.hit(ten_a_minute, "key", "other")
    assert again.allowed and again.remaining == 9 and cache.available, "the script is loaded again"
    assert not (await limiter.hit(ten_a_minute, "key", "shared")).allowed, "the count is still Redis's"
    await cache.close()
