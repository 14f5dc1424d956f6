"""Group commit: concurrent writes share a statement, each caller learns its own outcome, nothing is
acknowledged before it is stored; and the exchange batch statement on a real Postgres."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest

from chatwizard.chat.queries import CONTENT, ConversationGone, Exchange, store_exchanges
from chatwizard.chat.service import Answer
from chatwizard.core.batching import GroupCommit
from chatwizard.core.crypto import FieldCipher
from tests.conftest import FIELD_KEYS


class Recorder:
    """A batch writer that records its batches and holds each write until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def write(self, batch: list[int]) -> list[int | Exception]:
        self.batches.append(batch)
        await self.release.wait()
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def test_writes_arriving_during_a_write_share_the_next_statement():
    recorder = Recorder()
    writer = GroupCommit("test", recorder.write, max_in_flight=1)
    first = asyncio.create_task(writer.submit(0))
    await asyncio.sleep(0.01)  # the idle writer starts on the lone item at once
    assert recorder.batches == [[0]]
    later = [asyncio.create_task(writer.submit(n)) for n in (2, 4, 6)]
    await asyncio.sleep(0.01)
    assert not first.done(), "nothing is acknowledged before its batch is written"
    recorder.release.set()
    assert await first == 0 and await asyncio.gather(*later) == [20, 40, 60]
    assert recorder.batches == [[0], [2, 4, 6]]


async def test_each_caller_gets_its_own_outcome_and_a_failed_statement_reaches_all():
    recorder = Recorder()
    recorder.release.set()
    writer = GroupCommit("test", recorder.write)
    results = await asyncio.gather(*(writer.submit(n) for n in (2, 3)), return_exceptions=True)
    assert results[0] == 20 and isinstance(results[1], ValueError)

    async def broken(batch: list[int]) -> list[int | Exception]:
        raise ConnectionError("database unavailable")

    failing = GroupCommit("test", broken)
    results = await asyncio.gather(*(failing.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_write_submitted_as_the_writer_finishes_is_still_written():
    """The writer's last turn and a new submit in the same tick of the loop: the new one is not left
    behind waiting for a writer that has already finished (it would wait until the next write)."""
    recorder = Recorder()
    writer = GroupCommit("test", recorder.write)
    first = asyncio.create_task(writer.submit(0))
    await asyncio.sleep(0.01)  # the writer is inside its write, waiting for release

    async def submit_when_released() -> int:
        await recorder.release.wait()  # woken just after the writer, so it runs before the writer is reaped
        return await writer.submit(2)

    late = asyncio.create_task(submit_when_released())
    await asyncio.sleep(0.01)
    recorder.release.set()
    assert await first == 0
    assert await asyncio.wait_for(late, 1) == 20


async def test_under_load_the_writer_waits_until_a_batch_is_as_full_as_the_last():
    recorder = Recorder()
    writer = GroupCommit("test", recorder.write, max_wait_s=0.5)
    lone = asyncio.create_task(writer.submit(0))
    await asyncio.sleep(0.02)
    assert recorder.batches == [[0]], "a quiet writer adds no wait"
    burst = [asyncio.create_task(writer.submit(n)) for n in (2, 4, 6, 8)]
    await asyncio.sleep(0.02)
    recorder.release.set()
    assert await lone == 0 and await asyncio.gather(*burst) == [20, 40, 60, 80]
    assert recorder.batches == [[0], [2, 4, 6, 8]]

    half = [asyncio.create_task(writer.submit(n)) for n in (10, 12)]
    await asyncio.sleep(0.1)
    assert len(recorder.batches) == 2, "load: the writer waits for as many as the last batch held"
    rest = [asyncio.create_task(writer.submit(n)) for n in (14, 16)]
    await asyncio.sleep(0.05)
    assert recorder.batches[2:] == [[10, 12, 14, 16]], "the full batch goes at once, not after the wait"
    assert await asyncio.gather(*half, *rest) == [100, 120, 140, 160]

    started = asyncio.get_running_loop().time()
    assert await writer.submit(18) == 180, "a lull: the lone write waits out max_wait_s, no longer"
    assert 0.4 < asyncio.get_running_loop().time() - started < 2
    await asyncio.wait_for(writer.submit(20), 0.2)  # and then the writer is quiet again: no wait
    assert recorder.batches[3:] == [[18], [20]]


async def test_close_waits_for_writes_in_flight():
    recorder = Recorder()
    writer = GroupCommit("test", recorder.write)
    pending = asyncio.create_task(writer.submit(4))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    recorder.release.set()
    await closing
    assert pending.done() and pending.result() == 40


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(FIELD_KEYS)


async def test_one_statement_stores_new_and_continued_conversations_but_not_others(
        db: asyncpg.Connection, make_user, cipher: FieldCipher):
    alice, bob = await make_user(), await make_user()
    answer = Answer("Watch the first video.", [{"id": "v1"}], "openai", cache="exact")
    [(started, _)] = await store_exchanges(db, cipher, [Exchange(alice.id, None, "Q1", answer)])
    results = await store_exchanges(db, cipher, [
        Exchange(alice.id, started, "Q2", answer),        # continues her conversation
        Exchange(bob.id, None, "Q3", answer),             # starts his
        Exchange(bob.id, started, "Q4", answer),          # not his: stores nothing
        Exchange(alice.id, uuid4(), "Q5", answer),        # gone (erased meanwhile)
    ])
    assert results[0][0] == started and results[1][0] != started
    assert isinstance(results[2], ConversationGone) and isinstance(results[3], ConversationGone)
    rows = await db.fetch("SELECT role, content, cache FROM messages WHERE conversation_id = $1 "
                          "ORDER BY created_at, role DESC", started)
    assert [(r["role"], cipher.decrypt(r["content"], CONTENT)) for r in rows] == [
        ("user", "Q1"), ("assistant", answer.text), ("user", "Q2"), ("assistant", answer.text)]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", results[1][0]) == 2
