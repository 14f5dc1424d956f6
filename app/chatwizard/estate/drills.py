"""Disaster-recovery drills against a running estate: mixed traffic with a ledger, faults, figures.

Each drill drives real clients (writes, searches, chats) at the app over HTTP, injects one fault
into a real server (a hung or killed Postgres node, a stopped Redis, a failing LLM) and returns what
the clients saw: status codes, how long requests waited, and for writes a ledger of what was acknowledged,
checked afterwards against the database. The tests assert on these results and `chatwizard drill`
writes them to docs/reliability/ (runbooks/disaster-recovery.md quotes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from chatwizard.accounts import service as accounts
from chatwizard.core.crypto import FieldCipher
from chatwizard.core.settings import APP_DB_LOGIN
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import PostgresNode, failover_dsn, start_pair
from chatwizard.estate.processes import stop_process, wait_ready
from chatwizard.estate.redis import RedisNode
from chatwizard.estate.up import field_keys, start_app
from chatwizard.videos.sample import SAMPLE_DIR
from fakellm.config import FakeLLMConfig
from fakellm.testing import RunningFakeLLM, running_fake_llm

SEARCHES = ("lua tables", "unity physics", "blender rig", "godot signals", "python lists", "roblox door")
KINDS = ("write", "search", "chat")
CACHED_QUESTION = "How do I script a door that opens in Roblox?"


@dataclass
class Sample:
    kind: str  # write | search | chat
    started: float
    seconds: float
    status: int  # 0: no answer (connection error or client timeout)
    retry_after: bool = False
    saved: bool | None = None  # chats: was the exchange stored


@dataclass
class Traffic:
    """What the clients saw, and the writes the app acknowledged (event ids of 201 answers)."""
    samples: list[Sample] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)

    def of(self, kind: str, since: float = 0.0, until: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind and since <= s.started < until]

    def statuses(self, kind: str, since: float = 0.0, until: float = float("inf")) -> dict[int, int]:
        return dict(Counter(s.status for s in self.of(kind, since, until)))

    def server_errors(self) -> list[Sample]:
        """5xx other than a 503 with Retry-After (the one error a fault may cause), and no answer."""
        return [s for s in self.samples if s.status == 0 or (s.status >= 500 and not
                                                             (s.status == 503 and s.retry_after))]


async def _timed(traffic: Traffic, kind: str, call: Awaitable[httpx.Response]) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await call
    except httpx.HTTPError:
        traffic.samples.append(Sample(kind, started, time.monotonic() - started, 0))
        return None
    sample = Sample(kind, started, time.monotonic() - started, response.status_code,
                    "retry-after" in response.headers)
    if kind == "chat" and response.status_code == 200:
        sample.saved = response.json().get("saved")
    traffic.samples.append(sample)
    return response


async def _writer(client: httpx.AsyncClient, traffic: Traffic, video_id: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        event_id = str(uuid.uuid4())
        response = await _timed(traffic, "write", client.post(
            "/v1/progress/events", json={"event_id": event_id, "video_id": video_id, "kind": "click"}))
        if response is not None and response.status_code == 201:
            traffic.acknowledged.append(event_id)
        await asyncio.sleep(0.02)


async def _reader(client: httpx.AsyncClient, traffic: Traffic, stop: asyncio.Event) -> None:
    run, i = uuid.uuid4().hex[:6], 0
    while not stop.is_set():  # a word of its own per search: each one reaches the database, not the cache
        query = f"{SEARCHES[i % len(SEARCHES)]} {run}{i}"
        await _timed(traffic, "search", client.get("/v1/videos/search", params={"q": query}))
        i += 1
        await asyncio.sleep(0.05)


async def _chatter(client: httpx.AsyncClient, traffic: Traffic, stop: asyncio.Event, fresh: bool) -> None:
    i = 0
    while not stop.is_set():
        question = f"How do I make a level {i} in Godot?" if fresh else CACHED_QUESTION
        await _timed(traffic, "chat", client.post("/v1/chat", json={"question": question}))
        i += 1
        await asyncio.sleep(0.1)


MIXED = "wwrrcf"  # two writers, two searchers, a cached chat, a fresh chat (each with its own key)


async def mixed_traffic(base_url: str, keys: list[str], video_id: str, fault: Callable[[], Any],
                        mix: str = MIXED, *, client_timeout_s: float = 30.0) -> Traffic:
    """Clients in ``mix`` (one key each) run while ``fault`` runs (a coroutine function that injects a
    fault, waits and repairs it); returns what they saw."""
    traffic = Traffic()
    stop = asyncio.Event()
    clients = [httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=client_timeout_s, trust_env=False) for key in keys[:len(mix)]]
    try:
        for client in clients:  # the keys are looked up once, then cached like any active user's
            assert (await client.post("/v1/chat", json={"question": CACHED_QUESTION})).status_code == 200
        tasks = [asyncio.create_task(_worker(kind, client, traffic, video_id, stop))
                 for kind, client in zip(mix, clients, strict=True)]
        try:
            await fault()
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()
    return traffic


async def _worker(kind: str, client: httpx.AsyncClient, traffic: Traffic, video_id: str,
                  stop: asyncio.Event) -> None:
    if kind == "w":
        await _writer(client, traffic, video_id, stop)
    elif kind == "r":
        await _reader(client, traffic, stop)
    else:
        await _chatter(client, traffic, stop, fresh=kind == "f")


CLIENTS = 6  # keys the drills need at most


@contextlib.contextmanager
def hung(node: PostgresNode) -> Iterator[None]:
    """The node's processes stopped, not dead: connections stay open and nothing answers."""
    node.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        node.signal(signal.SIGCONT)


@dataclass
class HungNodeResult:
    node: str
    hung_for_s: float
    traffic: Traffic
    hang_started: float
    hang_ended: float

    def during(self, kind: str) -> dict[int, int]:
        return self.traffic.statuses(kind, self.hang_started, self.hang_ended)

    def waited(self, kind: str | None = None) -> float:
        """The longest any request spent waiting while the node hung (from the hang or its own start,
        whichever is later, to its answer): time before the fault is not the fault's."""
        return max((s.started + s.seconds - max(s.started, self.hang_started) for s in self.traffic.samples
                    if (kind is None or s.kind == kind) and s.started < self.hang_ended
                    and s.started + s.seconds > self.hang_started), default=0.0)

    def figures(self) -> dict[str, Any]:
        chats = self.traffic.of("chat", self.hang_started, self.hang_ended)
        return {"node": self.node, "hung_for_s": self.hung_for_s,
                "longest_wait_s": {kind: round(self.waited(kind), 2) for kind in KINDS},
                "writes": self.during("write"),
                "searches": self.during("search"), "chats": self.during("chat"),
                "chats_answered_unsaved": sum(1 for c in chats if c.saved is False),
                "errors_without_retry_after": len(self.traffic.server_errors())}


async def hung_node_drill(base_url: str, keys: list[str], video_id: str, node: PostgresNode, name: str,
                          hang_s: float = 6.0) -> HungNodeResult:
    marks: dict[str, float] = {}

    async def fault() -> None:
        await asyncio.sleep(1.5)  # traffic before the fault
        with hung(node):
            marks["start"] = time.monotonic()
            await asyncio.sleep(hang_s)
            marks["end"] = time.monotonic()
        await asyncio.sleep(3)  # and after it

    traffic = await mixed_traffic(base_url, keys, video_id, fault)
    return HungNodeResult(name, hang_s, traffic, marks["start"], marks["end"])


@dataclass
class FailoverResult:
    synchronous: bool
    acknowledged: int
    lost: int
    detect_s: float  # primary killed -> the app reports it down (what pages on-call)
    promote_s: float  # `chatwizard promote` itself
    rto_s: float  # primary killed -> the first write acknowledged by the promoted node
    writes: dict[int, int]

    def figures(self) -> dict[str, Any]:
        return {"replication": "synchronous" if self.synchronous else "asynchronous",
                "acknowledged_writes": self.acknowledged, "acknowledged_writes_lost": self.lost,
                "detect_s": round(self.detect_s, 1), "promote_s": round(self.promote_s, 1),
                "rto_s": round(self.rto_s, 1), "writes": self.writes}


async def failover_drill(estate: DrillEstate, *, synchronous: bool, load_s: float = 4.0) -> FailoverResult:
    """Kill the primary under write load, promote the replica as on-call would (`chatwizard promote`),
    and measure from the clients' ledger how long writes failed and which acknowledged ones are gone."""
    estate.primary.set_synchronous_standby(synchronous)
    marks: dict[str, float] = {}

    async def fault() -> None:
        await asyncio.sleep(load_s)
        marks["killed"] = time.monotonic()
        estate.primary.kill()
        await _until(lambda: estate.ready().get("checks", {}).get("primary", {}).get("status") == "down")
        marks["detected"] = time.monotonic()
        promote(estate.primary, estate.replica)
        marks["promoted"] = time.monotonic()
        await _until(lambda: estate.ready().get("status") in ("ok", "degraded"), timeout_s=60)
        await asyncio.sleep(load_s)

    traffic = await mixed_traffic(estate.base_url, estate.keys, estate.video_id, fault, mix="wwww")
    back = [s for s in traffic.of("write", since=marks["killed"]) if s.status == 201]
    stored = await _stored_events(estate.replica.dsn, traffic.acknowledged)
    return FailoverResult(synchronous, len(traffic.acknowledged), len(traffic.acknowledged) - stored,
                          marks["detected"] - marks["killed"], marks["promoted"] - marks["detected"],
                          (back[0].started + back[0].seconds - marks["killed"]) if back else float("inf"),
                          traffic.statuses("write"))


def promote(old_primary: PostgresNode, standby: PostgresNode) -> None:
    """Fence the old primary (its processes killed, if any are left: two primaries would each take
    writes the other never sees), then promote the standby."""
    old_primary.kill()
    standby.promote()


async def _until(check: Callable[[], bool], timeout_s: float = 30, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError("the estate did not reach the expected state")
        await asyncio.sleep(interval_s)


async def _stored_events(dsn: str, event_ids: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM progress_events WHERE event_id = ANY($1::uuid[])",
                                   event_ids)
    finally:
        await conn.close()


@dataclass
class DrillEstate:
    """A throwaway estate for destructive drills: its own Postgres pair, Redis, fake LLM and app, the
    app's primary URL naming both nodes (so a promoted replica is found), users with keys."""
    base_url: str
    primary: PostgresNode
    replica: PostgresNode
    redis: RedisNode
    llm: RunningFakeLLM
    keys: list[str]
    video_id: str

    def ready(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return httpx.get(f"{self.base_url}/readyz", timeout=5, trust_env=False).json()
        return {}


@contextlib.contextmanager
def drill_estate(state_dir: Path, **settings: str) -> Iterator[DrillEstate]:
    stops: list[Callable[[], Any]] = []
    try:
        primary, replica = start_pair(state_dir, free_port(), free_port())
        stops += [lambda: replica.stop("immediate"), lambda: primary.stop("immediate")]
        redis = RedisNode(state_dir / "redis", free_port(), persist=False)
        redis.start()
        stops.insert(0, redis.stop)
        llm_context = running_fake_llm(FakeLLMConfig(latency_mode="none"))
        llm = llm_context.__enter__()
        stops.insert(0, lambda: llm_context.__exit__(None, None, None))
        password = secrets.token_urlsafe(16)
        env = {**os.environ, "CHATWIZARD_ENVIRONMENT": "test", "CHATWIZARD_PORT": str(free_port()),
               "CHATWIZARD_METRICS_PORT": str(free_port()), "CHATWIZARD_DATABASE_URL": primary.dsn,
               "CHATWIZARD_REPLICA_URL": replica.dsn, "CHATWIZARD_REDIS_URL": redis.url,
               "CHATWIZARD_METRICS_MULTIPROC_DIR": str(state_dir / "metrics"),
               "CHATWIZARD_FIELD_KEYS": field_keys(state_dir), "OPENAI_API_KEY": "sk-drill-fake-llm",
               "OPENAI_BASE_URL": llm.base_url, **settings}
        chatwizard = str(Path(sys.executable).with_name("chatwizard"))
        for command in (["migrate"], ["ingest", str(SAMPLE_DIR)]):
            subprocess.run([chatwizard, *command], env=env | {"CHATWIZARD_APP_DB_PASSWORD": password},
                           check=True, capture_output=True)
        keys = asyncio.run(_drill_users(primary.dsn, FieldCipher(env["CHATWIZARD_FIELD_KEYS"])))
        env |= {"CHATWIZARD_DATABASE_URL": failover_dsn(primary, replica, APP_DB_LOGIN, password),
                "CHATWIZARD_REPLICA_URL": replica.dsn_as(APP_DB_LOGIN, password)}
        app = start_app(env, state_dir / "app.log")
        stops.insert(0, lambda: stop_process(app))
        base_url = f"http://127.0.0.1:{env['CHATWIZARD_PORT']}"
        wait_ready(f"{base_url}/readyz", app)
        video_id = primary.psql("SELECT id FROM videos ORDER BY id LIMIT 1")
        yield DrillEstate(base_url, primary, replica, redis, llm, keys, video_id)
    finally:
        for stop in stops:
            stop()


async def _drill_users(dsn: str, cipher: FieldCipher) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        keys = []
        for _ in range(CLIENTS):
            user = await accounts.create_user(conn, cipher, f"drill-{uuid.uuid4()}@example.com", "pro")
            keys.append((await accounts.create_key(conn, user["id"], "drill"))[0])
        return keys
    finally:
        await conn.close()
