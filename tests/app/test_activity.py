"""Activity bookkeeping: every worker forgets the users it has stopped seeing, not only the worker that
wins the sweeper lock (the others would otherwise grow their push-time table without bound)."""

from __future__ import annotations

import uuid

from pydantic import SecretStr

from chatwizard.core import activity
from chatwizard.core.activity import Activity
from chatwizard.core.cache import Cache
from chatwizard.core.settings import Settings


async def test_a_worker_that_never_wins_the_sweeper_lock_still_prunes(redis_node, monkeypatch):
    cache = Cache(Settings(redis_url=SecretStr(redis_node.url)))
    try:
        worker = Activity(cache)
        for _ in range(50):
            await worker.seen(uuid.uuid4())
        assert len(worker.pushed) == 50
        # Another worker holds the lock for this round, and every push is now past the idle window.
        await cache.call("test", lambda r: r.set("cw:sess:sweeper", "other", ex=60), None)
        monkeypatch.setattr(activity, "SESSION_IDLE_S", -1)
        await worker.sweep()
        assert worker.pushed == {}, "a worker without the lock kept every user it ever saw"
    finally:
        await cache.call("test", lambda r: r.delete("cw:sess:sweeper"), None)
        await cache.close()
