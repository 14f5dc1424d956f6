"""Redis access: a burst of requests larger than the connection pool waits its turn; only a Redis
that does not answer puts the process in fallback mode."""

from __future__ import annotations

import asyncio

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
