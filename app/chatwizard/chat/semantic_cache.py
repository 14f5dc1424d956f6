"""Semantic answer cache: "is there an earlier question close enough to this one?"

Entries (question embedding -> exact-cache key) are appended to a Redis stream per catalogue and
prompt version, capped at ``semantic_cache_max_entries``. Each process mirrors the stream into a
NumPy matrix, reading only entries it has not seen, so a lookup is one small XRANGE plus one
matrix-vector product (~5,000 x 384 floats: well under a millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chatwizard.core.services import Services

DIMENSIONS = 384


def stream_key(version: int, prompt_version: str) -> str:
    return f"cw:sem:{version}:{prompt_version}"


@dataclass
class SemanticIndex:
    """The newest ``capacity`` entries in a ring allocated once: arriving entries overwrite the oldest
    slots in place, so a busy cache neither copies its matrix nor fragments the heap as it fills."""

    stream: str = ""
    newest: tuple[int, int] | None = None  # the id of the newest entry taken in, as numbers
    capacity: int = 0
    size: int = 0
    next_slot: int = 0
    vectors: np.ndarray = field(default_factory=lambda: np.empty((0, DIMENSIONS), dtype=np.float32))
    keys: list[str] = field(default_factory=list)

    def reset(self, stream: str, capacity: int) -> None:
        self.stream, self.newest, self.capacity, self.size, self.next_slot = stream, None, capacity, 0, 0
        self.vectors = np.zeros((capacity, DIMENSIONS), dtype=np.float32)
        self.keys = [""] * capacity

    @property
    def last_id(self) -> str:
        """Where the next XRANGE starts: just after the newest entry taken in."""
        return "-" if self.newest is None else "({}-{}".format(*self.newest)

    def add(self, vector: np.ndarray, key: str) -> None:
        """Put one unit vector in the oldest slot (nothing is kept at capacity 0: the cache is off)."""
        if not self.capacity:
            return
        self.vectors[self.next_slot] = vector
        self.keys[self.next_slot] = key
        self.next_slot = (self.next_slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Take in stream entries read after ``last_id``; the ring keeps the newest ``capacity``.
        Concurrent lookups read from the same ``last_id``, so entries already taken in are skipped:
        kept twice, they would crowd distinct questions out of the ring."""
        fresh = [(entry_id, fields) for entry_id, fields in entries
                 if self.newest is None or stream_order(entry_id) > self.newest]
        if not fresh:
            return
        self.newest = stream_order(fresh[-1][0])
        for _, fields in fresh:
            self.add(np.frombuffer(fields[b"v"], dtype=np.float32), fields[b"k"].decode())

    def best(self, query: np.ndarray) -> tuple[str, float] | None:
        if not self.size:
            return None
        scores = self.vectors[: self.size] @ query
        index = int(np.argmax(scores))
        return self.keys[index], float(scores[index])


def stream_order(entry_id: bytes) -> tuple[int, int]:
    """A Redis stream id (b"<ms>-<seq>") as numbers, which order as the stream does."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq)


_index = SemanticIndex()


def unit(vector: list[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


async def lookup(services: Services, version: int, embedding: list[float]) -> tuple[str, float] | None:
    """The exact-cache key of the most similar earlier question above the threshold, if any."""
    s = services.settings
    stream = stream_key(version, s.prompt_version)
    if (_index.stream, _index.capacity) != (stream, s.semantic_cache_max_entries):
        _index.reset(stream, s.semantic_cache_max_entries)
    entries = await services.cache.call(
        "xrange", lambda r: r.xrange(stream, min=_index.last_id, max="+"), None
    )
    if entries is None:  # Redis unavailable: no semantic cache
        return None
    _index.extend(entries)
    found = _index.best(unit(embedding))
    if found is None or found[1] < s.semantic_cache_threshold:
        return None
    return found


async def remember(services: Services, version: int, embedding: list[float], answer_key: str) -> str | None:
    """Add an entry; returns its stream id (kept per user so erasure can remove it)."""
    s = services.settings
    stream = stream_key(version, s.prompt_version)
    fields = {"v": unit(embedding).tobytes(), "k": answer_key}

    async def add(r: Any) -> Any:
        async with r.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, fields, maxlen=s.semantic_cache_max_entries, approximate=True)
            pipe.expire(stream, s.cache_answer_ttl_s)  # old catalogue versions age out
            return (await pipe.execute())[0]

    entry_id = await services.cache.call("xadd", add, None)
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
