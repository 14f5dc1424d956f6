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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from chatwizard.accounts import service as accounts
from chatwizard.core.crypto import FieldCipher
from chatwizard.core.settings import APP_DB_LOGIN
from chatwizard.estate.backup import (
    ARCHIVE_TIMEOUT_S,
    BackupStore,
    S3StandIn,
    base_backup,
    enable_archiving,
    restore,
)
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import DATABASE, PostgresNode, failover_dsn, fence_and_promote, start_pair
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


async def timed(traffic: Traffic, kind: str, call: Awaitable[httpx.Response]) -> httpx.Response | None:
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
        response = await timed(traffic, "write", client.post(
            "/v1/progress/events", json={"event_id": event_id, "video_id": video_id, "kind": "click"}))
        if response is not None and response.status_code == 201:
            traffic.acknowledged.append(event_id)
        await asyncio.sleep(0.02)


async def _reader(client: httpx.AsyncClient, traffic: Traffic, stop: asyncio.Event) -> None:
    run, i = uuid.uuid4().hex[:6], 0
    while not stop.is_set():  # a word of its own per search: each one reaches the database, not the cache
        query = f"{SEARCHES[i % len(SEARCHES)]} {run}{i}"
        await timed(traffic, "search", client.get("/v1/videos/search", params={"q": query}))
        i += 1
        await asyncio.sleep(0.05)


async def _chatter(client: httpx.AsyncClient, traffic: Traffic, stop: asyncio.Event, fresh: bool) -> None:
    i = 0
    while not stop.is_set():
        question = f"How do I make a level {i} in Godot?" if fresh else CACHED_QUESTION
        await timed(traffic, "chat", client.post("/v1/chat", json={"question": question}))
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


@dataclass
class FaultResult:
    """Mixed traffic through one fault (``fault_s`` long, between ``started`` and ``ended``)."""
    fault: str
    fault_s: float
    traffic: Traffic
    started: float
    ended: float

    def during(self, kind: str) -> dict[int, int]:
        return self.traffic.statuses(kind, self.started, self.ended)

    def waited(self, kind: str | None = None) -> float:
        """The longest any request spent waiting during the fault (from the fault or its own start,
        whichever is later, to its answer): time before the fault is not the fault's."""
        return max((s.started + s.seconds - max(s.started, self.started) for s in self.traffic.samples
                    if (kind is None or s.kind == kind) and s.started < self.ended
                    and s.started + s.seconds > self.started), default=0.0)

    def figures(self) -> dict[str, Any]:
        chats = self.traffic.of("chat", self.started, self.ended)
        return {"fault": self.fault, "fault_s": self.fault_s,
                "longest_wait_s": {kind: round(self.waited(kind), 2) for kind in KINDS},
                "writes": self.during("write"), "searches": self.during("search"),
                "chats": self.during("chat"),
                "chats_answered_unsaved": sum(1 for c in chats if c.saved is False),
                "requests": len(self.traffic.samples),
                "errors_without_retry_after": len(self.traffic.server_errors())}


async def fault_drill(base_url: str, keys: list[str], video_id: str, fault: str, inject: Callable[[], Any],
                      repair: Callable[[], Any], fault_s: float = 6.0) -> FaultResult:
    """Mixed traffic for 1.5 s, then ``inject`` (a blocking call), ``fault_s`` later ``repair``, then 3 s
    more traffic."""
    marks: dict[str, float] = {}

    async def run_fault() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(inject)
        marks["start"] = time.monotonic()
        try:
            await asyncio.sleep(fault_s)
        finally:
            marks["end"] = time.monotonic()
            await asyncio.to_thread(repair)
        await asyncio.sleep(3)

    traffic = await mixed_traffic(base_url, keys, video_id, run_fault)
    return FaultResult(fault, fault_s, traffic, marks["start"], marks["end"])


async def hung_node_drill(base_url: str, keys: list[str], video_id: str, node: PostgresNode,
                          name: str) -> FaultResult:
    """The node's processes stopped, not dead: connections stay open and nothing answers."""
    return await fault_drill(base_url, keys, video_id, f"{name} hung", lambda: node.signal(signal.SIGSTOP),
                             lambda: node.signal(signal.SIGCONT))


async def redis_outage_drill(base_url: str, keys: list[str], video_id: str, redis: RedisNode) -> FaultResult:
    return await fault_drill(base_url, keys, video_id, "redis down", redis.stop, redis.start)


async def llm_outage_drill(base_url: str, keys: list[str], video_id: str, llm: RunningFakeLLM) -> FaultResult:
    """Every LLM call fails with 500 (chat and embeddings), as during a provider outage."""
    fail, recover = (lambda: llm.configure(error_rate_500=1.0)), (lambda: llm.configure(error_rate_500=0.0))
    return await fault_drill(base_url, keys, video_id, "llm failing", fail, recover)


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
        fence_and_promote(estate.primary, estate.replica)
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
    store: BackupStore
    env: dict[str, str]  # the app's environment
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
        s3 = S3StandIn(free_port())
        s3.start(state_dir / "s3.log")
        stops.append(s3.stop)
        store = BackupStore(s3.url, "chatwizard-backups")
        store.create_bucket()
        enable_archiving(primary, store)
        primary.stop()
        primary.start()
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
        yield DrillEstate(base_url, primary, replica, redis, llm, store, env, keys, video_id)
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


@dataclass
class BackupResult:
    backup_s: float  # one base backup of the sample estate
    acknowledged: int
    lost: int  # acknowledged writes missing from the restore to the latest point
    rpo_s: float  # disaster -> the newest acknowledged write the restore kept
    restore_s: float  # restore to a new node, WAL replayed, promoted
    rto_s: float  # restore started -> an app on the restored node answers searches
    pitr_before_kept: bool  # written 0.5 s before the target time: present
    pitr_after_dropped: bool  # written 0.5 s after it: absent
    encrypted_objects: str

    def figures(self) -> dict[str, Any]:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in self.__dict__.items()}


async def backup_drill(estate: DrillEstate, state_dir: Path, load_s: float = 8.0) -> BackupResult:
    """Base backup, then writes through the app with a ledger; two marker rows 1 s apart; ``load_s``
    later the primary is lost. Restore to the latest point on a new node and count the acknowledged
    writes missing (RPO), start an app on it (RTO), and restore to a time between the markers (PITR).
    Use a ``load_s`` above the archive timeout for a faithful RPO: shorter, the drill sees less loss."""
    started = time.monotonic()
    await asyncio.to_thread(base_backup, estate.primary, estate.store)
    backup_s = time.monotonic() - started
    marks: dict[str, Any] = {}

    async def disaster() -> None:
        await asyncio.sleep(1)
        _marker(estate.primary, "before")
        await asyncio.sleep(0.5)
        marks["target"] = datetime.now(UTC)
        await asyncio.sleep(0.5)
        _marker(estate.primary, "after")
        await asyncio.to_thread(_archive_now, estate.primary)
        await asyncio.sleep(load_s)
        marks["disaster"] = time.monotonic()
        estate.primary.kill()
        await asyncio.sleep(1)

    traffic = await mixed_traffic(estate.base_url, estate.keys, estate.video_id, disaster, mix="ww")
    acked = [s for s in traffic.of("write") if s.status == 201 and s.started + s.seconds <= marks["disaster"]]
    ledger = traffic.acknowledged[:len(acked)]  # both lists are in the order the writes were acknowledged
    started = time.monotonic()
    latest = PostgresNode(state_dir / "restored-latest", free_port())
    await asyncio.to_thread(restore, estate.store, latest)
    restore_s = time.monotonic() - started
    rto_s = await asyncio.to_thread(_serve_from, estate, latest, state_dir) + restore_s
    kept = await _stored(latest.dsn, ledger)
    newest = max((i for i, event in enumerate(ledger) if event in kept), default=None)
    last_kept_at = acked[newest].started + acked[newest].seconds if newest is not None else started
    pitr = PostgresNode(state_dir / "restored-pitr", free_port())
    await asyncio.to_thread(restore, estate.store, pitr, marks["target"])
    markers = set(pitr.psql("SELECT name FROM drill_markers").split())
    s3 = estate.store.s3()
    bucket = estate.store.bucket
    encryption = {s3.head_object(Bucket=bucket, Key=o["Key"]).get("ServerSideEncryption", "none")
                  for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    for node in (latest, pitr):
        node.stop("immediate")
    rpo_s = max(marks["disaster"] - last_kept_at, 0.0)
    return BackupResult(backup_s, len(ledger), len(ledger) - len(kept), rpo_s,
                        restore_s, rto_s, "before" in markers, "after" not in markers,
                        ",".join(sorted(encryption)))


def _marker(node: PostgresNode, name: str) -> str:
    node.psql("CREATE TABLE IF NOT EXISTS drill_markers (name text, at timestamptz DEFAULT now())")
    return node.psql(f"INSERT INTO drill_markers (name) VALUES ('{name}') RETURNING at")


def _archive_now(node: PostgresNode, timeout_s: float = 60) -> None:
    """Close the current WAL segment and wait until it is in the bucket."""
    segment = node.psql("SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + timeout_s
    while node.psql("SELECT last_archived_wal FROM pg_stat_archiver") < segment:
        if time.monotonic() > deadline:
            raise TimeoutError(f"WAL segment {segment} not archived in {timeout_s} s")
        time.sleep(0.2)


async def _stored(dsn: str, event_ids: list[str]) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id::text FROM progress_events WHERE event_id = ANY($1::uuid[])",
                                event_ids)
    finally:
        await conn.close()
    return {r[0] for r in rows}


def _serve_from(estate: DrillEstate, node: PostgresNode, state_dir: Path) -> float:
    """Start an app whose primary is ``node`` (as the restored estate would run) and time until it
    answers a search; returns the seconds."""
    started = time.monotonic()
    url = estate.env["CHATWIZARD_DATABASE_URL"]
    login = url.split("//", 1)[1].split("@", 1)[0]
    env = {k: v for k, v in estate.env.items() if k != "CHATWIZARD_REPLICA_URL"} | {
        "CHATWIZARD_DATABASE_URL": f"postgresql://{login}@127.0.0.1:{node.port}/{DATABASE}",
        "CHATWIZARD_PORT": str(free_port()), "CHATWIZARD_METRICS_PORT": str(free_port()),
        "CHATWIZARD_METRICS_MULTIPROC_DIR": str(state_dir / "metrics-restored")}
    app = start_app(env, state_dir / "app-restored.log")
    try:
        base = f"http://127.0.0.1:{env['CHATWIZARD_PORT']}"
        wait_ready(f"{base}/readyz", app)
        response = httpx.get(f"{base}/v1/videos/search", params={"q": "lua tables"}, trust_env=False,
                             headers={"Authorization": f"Bearer {estate.keys[0]}"}, timeout=30)
        if response.status_code != 200 or not response.json()["videos"]:
            raise RuntimeError(f"the app on the restored node does not serve: {response.status_code}")
        return time.monotonic() - started
    finally:
        stop_process(app)


def run_all(state_dir: Path, backup_load_s: float = 45.0) -> str:
    """Every drill on throwaway estates under ``state_dir``; returns the report (Markdown)."""
    started = datetime.now(UTC)
    with drill_estate(state_dir / "outages") as estate:
        args = (estate.base_url, estate.keys, estate.video_id)
        outages = [asyncio.run(drill) for drill in (
            hung_node_drill(*args, estate.replica, "replica"),
            hung_node_drill(*args, estate.primary, "primary"),
            redis_outage_drill(*args, estate.redis), llm_outage_drill(*args, estate.llm))]
    failovers = []
    for synchronous in (False, True):
        with drill_estate(state_dir / f"failover-{'sync' if synchronous else 'async'}") as estate:
            failovers.append(asyncio.run(failover_drill(estate, synchronous=synchronous)))
    with drill_estate(state_dir / "backup") as estate:
        backup = asyncio.run(backup_drill(estate, state_dir / "backup", load_s=backup_load_s))
    return render(started, outages, failovers, backup, backup_load_s)


def render(started: datetime, outages: list[FaultResult], failovers: list[FailoverResult],
           backup: BackupResult, backup_load_s: float) -> str:
    def counts(statuses: dict[int, int]) -> str:
        return ", ".join(f"{n}: {code or 'no answer'}" for code, n in sorted(statuses.items())) or "none"

    lines = [f"# Disaster-recovery drills, {started:%Y-%m-%d %H:%M} UTC", "",
             "Made by `make drill` (`chatwizard drill`): throwaway estates on loopback (Postgres 18",
             "primary + streaming replica, Valkey, the fake LLM, the app under gunicorn with 2 workers,",
             "moto's S3 API) and real clients keeping a ledger of acknowledged writes. What to do in each",
             "scenario:",
             "[runbooks/disaster-recovery.md](../../runbooks/disaster-recovery.md).", "",
             "## Outages under mixed traffic (2 writers, 2 searchers, a cached and a fresh chat)", "",
             "| fault (6 s) | longest wait: write / search / chat | writes | searches | chats (unsaved) "
             "| 5xx without Retry-After |", "|---|---|---|---|---|---|"]
    for o in outages:
        f = o.figures()
        wait = " / ".join(f"{f['longest_wait_s'][k]:.2f} s" for k in KINDS)
        lines.append(f"| {o.fault} | {wait} | {counts(f['writes'])} | {counts(f['searches'])} | "
                     f"{counts(f['chats'])} ({f['chats_answered_unsaved']}) | "
                     f"{f['errors_without_retry_after']} |")
    lines += ["", "## Failover: primary killed under write load, replica promoted (`chatwizard promote`)", "",
              "| replication | acknowledged writes | lost | detected | promote | RTO (kill → writes again) |"
              " writes seen |", "|---|---|---|---|---|---|---|"]
    for r in failovers:
        f = r.figures()
        lines.append(f"| {f['replication']} | {f['acknowledged_writes']} | "
                     f"{f['acknowledged_writes_lost']} | {f['detect_s']} s | {f['promote_s']} s | "
                     f"{f['rto_s']} s | {counts(f['writes'])} |")
    b = backup.figures()
    lines += ["", "## Backups and point-in-time recovery (barman-cloud → S3 API)", "",
              f"Writes through the app for {backup_load_s:.0f} s after the last forced WAL switch, then the",
              "primary is lost; restore to the latest point on a new node, then to a time between two rows",
              "1 s apart.", "",
              "| measure | result |", "|---|---|",
              f"| base backup of the sample estate | {b['backup_s']} s |",
              f"| objects in the bucket encrypted at rest | {b['encrypted_objects']} |",
              f"| acknowledged writes before the loss | {b['acknowledged']} |",
              f"| lost by restoring to the latest point | {b['lost']} |",
              f"| RPO (loss → newest write kept) | {b['rpo_s']} s "
              f"(archive_timeout {ARCHIVE_TIMEOUT_S} s) |",
              f"| restore to a new node (WAL replayed, promoted) | {b['restore_s']} s |",
              f"| RTO (restore started → an app on it answers searches) | {b['rto_s']} s |",
              f"| PITR: row 0.5 s before the target kept / 0.5 s after dropped | "
              f"{b['pitr_before_kept']} / {b['pitr_after_dropped']} |", ""]
    return "\n".join(lines)
