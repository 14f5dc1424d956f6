"""Two learners and the shared answer cache: one learner's own words never reach another, Redis holds
no personal text in plain, erasure takes every copy, and Redis refuses a client without its password."""

from __future__ import annotations

import uuid

import pytest
import redis

from chatwizard.core.crypto import PREFIX, FieldCipher
from tests.conftest import FIELD_KEYS, AppServer


def personal_details() -> tuple[str, str]:
    """A name and a street nobody else in the suite writes."""
    tag = uuid.uuid4().hex[:8]
    return f"Ottoline Vasquez{tag}", f"12 Marrowbone{tag} Lane"


def everything_in(store: redis.Redis) -> list[tuple[bytes, bytes]]:
    """Every key with each value Redis holds under it, as bytes (strings, set members, stream fields...)."""
    found = []
    for key in store.scan_iter(count=1000):
        kind = store.type(key)
        if kind == b"string":
            values = [store.get(key) or b""]
        elif kind == b"set":
            values = list(store.smembers(key))
        elif kind == b"zset":
            values = list(store.zrange(key, 0, -1))
        elif kind == b"hash":
            values = [b for pair in store.hgetall(key).items() for b in pair]
        elif kind == b"list":
            values = list(store.lrange(key, 0, -1))
        elif kind == b"stream":
            values = [b for _, fields in store.xrange(key) for pair in fields.items() for b in pair]
        else:
            values = []
        found += [(key, value) for value in values]
    return found


def readable(key: bytes, value: bytes) -> str:
    """What a value says to someone holding the field key ring (sealed answers are bound to their key)."""
    text = value.decode(errors="replace")
    if text.startswith(f'"{PREFIX}'):
        return FieldCipher(FIELD_KEYS).decrypt(text.strip('"'), key.decode())
    return text


def holding(store: redis.Redis, *words: str, decrypt: bool) -> list[bytes]:
    """Keys whose name or value holds any of ``words`` (case-insensitive)."""
    hits = []
    for key, value in everything_in(store):
        text = (key.decode(errors="replace") + " "
                + (readable(key, value) if decrypt else value.decode(errors="replace"))).lower()
        if any(w.lower() in text for w in words):
            hits.append(key)
    return hits


async def test_one_learners_words_never_reach_another_and_erasure_takes_every_copy(
        app_server: AppServer, redis_node, make_user):
    name, street = personal_details()
    topic = (f"make a glowing treasure chest open with a golden key and play a sparkle sound in Roblox Studio "
             f"{uuid.uuid4().hex[:6]}")
    alice, bob = await make_user(), await make_user()
    store = redis.Redis.from_url(redis_node.url)
    async with app_server.client(alice.key) as client:
        mine = f"I am {name}, {street}. How do I {topic}?"
        first = (await client.post("/v1/chat", json={"question": mine})).json()
        again = (await client.post("/v1/chat", json={"question": mine})).json()  # her own words: cached
    assert name in first["answer"], "the model quotes the question: the answer is derived from her words"
    assert again["cache"] == "exact" and again["answer"] == first["answer"]

    async with app_server.client(bob.key) as client:
        asked = []
        for _ in range(2):  # once answered somehow, then from whatever cache holds that answer
            response = await client.post("/v1/chat", json={"question": f"How do I {topic}?"})
            asked.append((response.headers["X-Cache"], response.json()["answer"]))
        history = (await client.get(f"/v1/conversations/{response.json()['conversation_id']}")).json()
    for cache, answer in asked:
        assert name not in answer and street not in answer, f"Alice's words reached Bob ({cache} cache)"
    assert name not in str(history) and street not in str(history), "Alice's words are in Bob's history"

    # In Redis her words exist only sealed (she put her answer in the cache; it is encrypted), and
    # nothing ties her user id to readable text.
    assert holding(store, name, street, decrypt=False) == [], "personal text in plain in Redis"
    assert holding(store, name, decrypt=True), "the scan should find her sealed answer (test self-check)"
    assert 0 < store.ttl(f"cw:user:{alice.id}:cache") <= 24 * 3600, "her index expires with her entries"
    async with app_server.client(alice.key) as client:
        assert (await client.delete("/v1/me")).status_code == 204
    assert holding(store, name, street, decrypt=True) == [], "a copy of her words survived her erasure"
    assert not store.exists(f"cw:user:{alice.id}:cache")
    carol = await make_user()  # no cache anywhere (Redis or a process's memory) still answers her words
    async with app_server.client(carol.key) as client:
        response = await client.post("/v1/chat", json={"question": mine})
    assert response.headers["X-Cache"] == "miss"


async def test_an_answer_serves_paraphrases_only_once_enough_learners_asked_its_words(
        app_server: AppServer, make_user):
    """The semantic cache shares what three learners asked word for word, never one learner's text."""
    tag = uuid.uuid4().hex[:6]
    question = f"How do I make a bouncing slime enemy in Godot {tag}?"
    paraphrases = [f"how can I create a bouncing slime enemy in godot {tag}",
                   f"bouncing slime enemy in godot {tag} tutorial",
                   f"how to build a bouncing slime enemy with godot {tag}"]
    askers, reader = [await make_user() for _ in range(3)], await make_user()
    verdicts = []
    for asker, paraphrase in zip(askers, paraphrases, strict=True):
        async with app_server.client(asker.key) as client:
            await client.post("/v1/chat", json={"question": question})
        async with app_server.client(reader.key) as client:
            verdicts.append((await client.post("/v1/chat", json={"question": paraphrase})).headers["X-Cache"])
    assert verdicts == ["miss", "miss", "semantic"], verdicts


def test_redis_refuses_a_client_without_the_password(redis_node):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=redis_node.port).get("cw:anything")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=redis_node.port, password="not-the-password").get("cw:anything")
    assert redis.Redis.from_url(redis_node.url).ping()
