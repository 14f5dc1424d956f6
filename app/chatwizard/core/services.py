"""The long-lived clients a process shares: created at startup, closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from chatwizard.core.activity import Activity
from chatwizard.core.batching import GroupCommit, WriteBatch
from chatwizard.core.cache import Cache
from chatwizard.core.crypto import FieldCipher
from chatwizard.core.db import Database
from chatwizard.core.llm import LocalProvider, OpenAIProvider, Provider, make_provider
from chatwizard.core.ratelimit import RateLimiter
from chatwizard.core.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    cache: Cache
    llm: Provider
    activity: Activity
    limiter: RateLimiter
    cipher: FieldCipher
    writers: dict[str, GroupCommit[Any, Any]] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        db = Database(settings)
        await db.open()
        llm = make_provider(settings)
        if isinstance(llm, LocalProvider):
            await llm.warm_up()
        elif isinstance(llm, OpenAIProvider):
            llm.start()
        cache = Cache(settings)
        cache.start_listening()
        ring = settings.field_keys.get_secret_value() if settings.field_keys else None
        return cls(settings, db, cache, llm, Activity(cache), RateLimiter(settings, cache), FieldCipher(ring))

    def writer(self, name: str, write_batch: WriteBatch[Any, Any]) -> GroupCommit[Any, Any]:
        """The process's group-commit writer called ``name`` (made on first use)."""
        if name not in self.writers:
            self.writers[name] = GroupCommit(name, write_batch,
                                             max_wait_s=self.settings.db_write_wait_ms / 1000)
        return self.writers[name]

    async def stop(self) -> None:
        for writer in self.writers.values():
            await writer.close()
        await self.limiter.batches.close()  # checks on their way to Redis get their answer first
        await self.db.close()
        await self.cache.close()
        if isinstance(self.llm, OpenAIProvider):
            await self.llm.close()


async def get_services(connection: HTTPConnection) -> Services:
    return connection.app.state.services  # async so FastAPI does not hop to its thread pool


ServicesDep = Annotated[Services, Depends(get_services)]
