"""The semantic cache's in-process mirror: a fixed ring holding the newest entries."""

from __future__ import annotations

import numpy as np

from chatwizard.chat.semantic_cache import DIMENSIONS, SemanticIndex


def entries(first: int, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries whose vectors are distinct unit axes, so each one matches only itself."""
    made = []
    for n in range(first, first + count):
        vector = np.zeros(DIMENSIONS, dtype=np.float32)
        vector[n % DIMENSIONS] = 1.0
        made.append((f"{n}-0".encode(), {b"v": vector.tobytes(), b"k": f"answer-{n}".encode()}))
    return made


def axis(n: int) -> np.ndarray:
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    vector[n] = 1.0
    return vector


def test_keeps_the_newest_entries_in_one_buffer():
    index = SemanticIndex()
    index.reset("cw:sem:1:v1", capacity=50)
    buffer = index.vectors
    for first in range(0, 200, 20):  # arrivals in batches, four times the capacity
        index.extend(entries(first, 20))
    assert index.vectors is buffer, "the matrix was reallocated"
    assert index.last_id == "(199-0"
    assert index.best(axis(199)) == ("answer-199", 1.0)
    assert index.best(axis(150)) == ("answer-150", 1.0)
    key, score = index.best(axis(149))  # evicted: it matches nothing any more
    assert key != "answer-149" and score == 0.0


def test_a_batch_larger_than_the_capacity_keeps_its_tail():
    index = SemanticIndex()
    index.reset("cw:sem:1:v1", capacity=10)
    index.extend(entries(0, 25))
    assert index.size == 10
    assert index.best(axis(24)) == ("answer-24", 1.0)
    assert index.best(axis(14))[0] != "answer-14"


def test_capacity_zero_disables_matching_but_follows_the_stream():
    index = SemanticIndex()
    index.reset("cw:sem:1:v1", capacity=0)
    index.extend(entries(0, 5))
    assert index.best(axis(3)) is None
    assert index.last_id == "(4-0"


def test_entries_read_by_two_concurrent_lookups_are_kept_once():
    """Lookups in flight together read from the same point of the stream and get the same entries."""
    index = SemanticIndex()
    index.reset("cw:sem:1:v1", capacity=50)
    index.extend(entries(0, 10))
    index.extend(entries(5, 10))  # overlaps: 5-9 were taken in already
    index.extend(entries(0, 15))  # all known
    assert index.size == 15 and index.last_id == "(14-0"
    assert sorted(index.keys[: index.size]) == sorted(f"answer-{n}" for n in range(15))
