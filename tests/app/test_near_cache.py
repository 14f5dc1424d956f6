"""The near cache: hot entries served from process memory, dropped in every process by a delete in any
one, and never used while a process cannot hear deletes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from chatwizard.core.cache import Cache
from chatwizard.core.settings import Settings


async def listening(cache: Cache) -> Cache:
    cache.start_listening()
    for _ in range(100):
        if cache.listening:
            return cache
        await asyncio.sleep(0.01)
    raise AssertionError("the cache never subscribed to invalidations")


@pytest.fixture
async def two_processes(redis_node) -> AsyncIterator[tuple[Cache, Cache]]:
    settings = Settings(redis_url=SecretStr(redis_node.url), near_cache_ttl_s=60)
    first, second = await listening(Cache(settings)), await listening(Cache(settings))
    yield first, second
    await first.close()
    await second.close()


async def eventually(check, timeout_s: float = 2.0) -> bool:
    for _ in range(int(timeout_s / 0.01)):
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_delete_in_one_process_reaches_the_others_near_cache(two_processes):
    first, second = two_processes
    await first.set_json("cw:test:near", {"tier": "pro"}, 60)
    assert await second.get_json("cw:test:near", near=True) == {"tier": "pro"}
    await first.client.set("cw:test:near", b'{"tier": "free"}')  # changed behind its back: still kept
    assert await second.get_json("cw:test:near", near=True) == {"tier": "pro"}
    assert await second.get_json("cw:test:near") == {"tier": "free"}, "without near=True it asks Redis"
    await first.delete("cw:test:near")
    assert await eventually(lambda: _is_gone(second, "cw:test:near")), "the other process kept a deleted entry"


async def _is_gone(cache: Cache, key: str) -> bool:
    return await cache.get_json(key, near=True) is None


async def test_a_process_that_cannot_hear_deletes_does_not_use_its_near_cache(redis_node):
    cache = Cache(Settings(redis_url=SecretStr(redis_node.url), near_cache_ttl_s=60))
    try:
        await cache.set_json("cw:test:deaf", 1, 60)
        assert await cache.get_json("cw:test:deaf", near=True) == 1
        assert not cache.near, "not subscribed: nothing kept in memory"
        await listening(cache)
        await cache.get_json("cw:test:deaf", near=True)
        assert "cw:test:deaf" in cache.near
        cache.mark_down("test")  # Redis considered down: deletes could not be heard, so memory is dropped from use
        assert await cache.get_json("cw:test:deaf", near=True) is None
    finally:
        await cache.close()


async def test_the_near_cache_keeps_at_most_its_entry_limit(redis_node):
    cache = await listening(Cache(Settings(redis_url=SecretStr(redis_node.url), near_cache_entries=3)))
    try:
        for i in range(5):
            await cache.set_json(f"cw:test:lru{i}", i, 60)
            await cache.get_json(f"cw:test:lru{i}", near=True)
        assert list(cache.near) == ["cw:test:lru2", "cw:test:lru3", "cw:test:lru4"]
    finally:
        await cache.close()
