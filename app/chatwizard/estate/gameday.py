"""`chatwizard gameday`: one fault, drawn at random, in a throwaway estate under steady traffic; the
person on call follows the page to its runbook and fixes it. The command measures onset → page, page →
the right runbook and onset → healthy SLIs, asks what the runbook got wrong, and appends the run to
docs/reliability/gamedays.md.

The estate is the drills' (Postgres primary + replica, Valkey, the fake LLM, the app under gunicorn)
with Prometheus evaluating the committed rules and Alertmanager running the production routes, every
receiver swapped for a webhook this command listens on: a page is what Alertmanager sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from chatwizard.estate.drills import CACHED_QUESTION, SEARCHES, DrillEstate, Traffic, drill_estate, timed
from chatwizard.estate.monitoring import MONITORING, Notification, Targets, Webhook, start_monitoring
from chatwizard.estate.ports import EstatePorts, free_port
from chatwizard.estate.postgres import BIN, run
from chatwizard.estate.up import write_env

RUNBOOKS = MONITORING.parent / "runbooks"
BASELINE_S = 45  # healthy traffic first: the alerts' 30 s windows hold only normal requests at onset
POLL_S = 1.0
# Requests per second of each kind, each kind with a key of its own. Open loop, as learners are: a slow
# answer does not slow the next arrival. Writes are about a third of it.
LOAD = {"write": 2.0, "search": 2.0, "chat": 1.0, "fresh": 0.5}
SLOW_S = yaml.safe_load((MONITORING / "config.yaml").read_text())["latency"]["critical_p95_s"]
LOCK_HOLD_S = 8  # the "batch job" of the slow-primary fault: writes wait up to this (< the 10 s timeout)
BATCH_JOB = "nightly-report"
Say = Callable[[str], None]
Ask = Callable[[str], str]


@dataclass
class GameDayEstate:
    drill: DrillEstate
    prometheus: str
    webhook: Webhook
    batch_job: threading.Event = field(default_factory=threading.Event)  # set: the job must stop

    def healthy(self, promql: str) -> bool:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": promql}, timeout=5)
            return bool(response.json()["data"]["result"])
        return False


@dataclass(frozen=True)
class Fault:
    name: str
    what: str  # told after the game day, in the report
    alert: str  # the alert that should page; its runbook is the right one
    healthy: str  # PromQL with a result once the SLIs are healthy again
    inject: Callable[[GameDayEstate], object]
    undo: Callable[[GameDayEstate], object]  # at the end, whatever the on-call did


def _revoke(estate: GameDayEstate) -> None:
    estate.drill.primary.psql("REVOKE INSERT ON progress_events FROM chatwizard_app")


def _grant(estate: GameDayEstate) -> None:
    estate.drill.primary.psql("GRANT INSERT ON progress_events TO chatwizard_app")


def _start_batch_job(estate: GameDayEstate) -> None:
    """A session that takes progress_events' SHARE lock for LOCK_HOLD_S at a time: writes queue behind
    it, reads carry on. It dies with its session (pg_terminate_backend), as a real job would."""
    dsn = f"postgresql://postgres@127.0.0.1:{estate.drill.primary.port}/chatwizard?application_name={BATCH_JOB}"
    sql = f"BEGIN; LOCK TABLE progress_events IN SHARE MODE; SELECT pg_sleep({LOCK_HOLD_S}); COMMIT;"

    def job() -> None:
        while not estate.batch_job.is_set():
            if run(BIN / "psql", dsn, "-c", sql, check=False).returncode != 0:
                return  # its session was ended
            time.sleep(0.2)

    threading.Thread(target=job, daemon=True).start()


def _stop_batch_job(estate: GameDayEstate) -> None:
    estate.batch_job.set()
    estate.drill.primary.psql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{BATCH_JOB}'")


FAULTS = {f.name: f for f in (
    Fault("replica-hang", "the replica's processes stopped (SIGSTOP): connections open, nothing answers",
          "ChatWizardReplicaDown", 'min(chatwizard_db_up{node="replica"}) == 1',
          lambda e: e.drill.replica.signal(signal.SIGSTOP), lambda e: e.drill.replica.signal(signal.SIGCONT)),
    Fault("redis-down", "Redis exited, as in a crash (a cache: nothing saved)", "ChatWizardRedisDown",
          "max(chatwizard_redis_fallback_active) == 0 and on() min(redis_up) == 1",
          lambda e: e.drill.redis.shutdown(), lambda e: None),  # the estate's stop ends a restarted one
    Fault("llm-errors", "the LLM provider answers every call with 500", "ChatWizardLLMDegraded",
          # Users' calls succeed and none fail or are refused. Not the breaker gauge: a worker with no LLM
          # call since the outage keeps its breaker open, and reports it, however well the rest serve.
          'sum(rate(chatwizard_llm_requests_total{outcome="ok"}[30s])) > 0 and on() '
          'sum(rate(chatwizard_llm_requests_total{outcome!="ok"}[30s])) == 0',
          lambda e: e.drill.llm.configure(error_rate_500=1.0),
          lambda e: e.drill.llm.configure(error_rate_500=0.0)),
    Fault("slow-primary", f"a batch job ('{BATCH_JOB}') locks progress_events {LOCK_HOLD_S} s at a time "
          "on the primary: writes wait", "ChatWizardHighLatency",
          "chatwizard:http_slow_requests:rate30s == 0", _start_batch_job, _stop_batch_job),
    Fault("error-burst", "a hand-made change revoked the app's INSERT on progress_events: writes fail "
          "with 500", "ChatWizardHighErrorRate", "chatwizard:http_errors:ratio_rate30s < 0.01",
          _revoke, _grant),
)}


class Learners:
    """Learners at a steady pace in a thread of its own (LOAD); what they saw, in ``traffic``."""

    def __init__(self, drill: DrillEstate) -> None:
        self.drill = drill
        self.traffic = Traffic()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Learners:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(60)

    async def _run(self) -> None:
        await asyncio.gather(*(self._steady(kind, rate, key) for (kind, rate), key
                               in zip(LOAD.items(), self.drill.keys, strict=False)))

    async def _steady(self, kind: str, rate: float, key: str) -> None:
        async with httpx.AsyncClient(base_url=self.drill.base_url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=30, trust_env=False) as client:
            pending: set[asyncio.Task[None]] = set()
            i, run_id = 0, uuid.uuid4().hex[:6]
            while not self.stopping.is_set():
                task = asyncio.create_task(self._one(client, kind, i, run_id))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*pending)

    async def _one(self, client: httpx.AsyncClient, kind: str, i: int, run_id: str) -> None:
        """One request; searches and fresh questions are new words each time (they reach the database
        and the LLM, not the cache)."""
        if kind == "write":
            call = client.post("/v1/progress/events", json={
                "event_id": str(uuid.uuid4()), "video_id": self.drill.video_id, "kind": "click"})
        elif kind == "search":
            call = client.get("/v1/videos/search", params={"q": f"{SEARCHES[i % len(SEARCHES)]} {run_id}{i}"})
        else:
            question = CACHED_QUESTION if kind == "chat" else f"How do I make level {run_id}{i} in Godot?"
            call = client.post("/v1/chat", json={"question": question})
        await timed(self.traffic, kind, call)


@contextlib.contextmanager
def gameday_estate(state_dir: Path) -> Iterator[GameDayEstate]:
    """A drill estate with Prometheus and Alertmanager paging this process's webhook; its addresses in
    state_dir/estate.env for the runbooks' commands."""
    webhook = Webhook()
    with drill_estate(state_dir) as drill, contextlib.ExitStack() as stack:
        stack.callback(webhook.close)
        env = drill.env
        ports = EstatePorts(int(env["CHATWIZARD_PORT"]), int(env["CHATWIZARD_METRICS_PORT"]),
                            drill.primary.port, drill.replica.port, drill.redis.port,
                            *(free_port() for _ in range(5)), 0, 0)
        targets = Targets(f"127.0.0.1:{ports.metrics}", drill.base_url, drill.primary.dsn,
                          f"127.0.0.1:{drill.redis.port}", drill.keys[-1], webhook.url, drill.redis.password)
        for _, stop in reversed(start_monitoring(state_dir / "monitoring", ports, targets)):
            stack.callback(stop)
        prometheus = f"http://127.0.0.1:{ports.prometheus}"
        write_env(state_dir, drill.base_url, drill.primary.dsn, drill.replica.dsn, prometheus,
                  f"http://127.0.0.1:{ports.alertmanager}", CW_LLM=drill.llm.root_url)
        yield GameDayEstate(drill, prometheus, webhook)


@dataclass
class Run:
    fault: Fault
    seed: int | None  # the draw's, to repeat it; None: the fault was chosen
    started: datetime
    onset: float = 0.0  # the fault went in (monotonic clock)
    pages: list[Notification] = field(default_factory=list)
    detection_s: float | None = None
    opened: list[tuple[str, float]] = field(default_factory=list)  # runbook, seconds after the page
    runbook_s: float | None = None
    recovery_s: float | None = None
    alert_firing_at_recovery: bool = False
    impact: str = ""
    notes: str = ""


def draw(fault_name: str | None, seed: int | None) -> tuple[Fault, int | None]:
    """The fault named, or one drawn by lot with ``seed`` (a new one if None): a seed draws the same
    fault again. Returns the seed of a draw, None for a fault named."""
    if fault_name:
        return FAULTS[fault_name], None
    seed = secrets.randbelow(10**6) if seed is None else seed
    return FAULTS[random.Random(seed).choice(sorted(FAULTS))], seed  # noqa: S311 (lots, not secrets)


def run_gameday(state_dir: Path, fault_name: str | None, seed: int | None, say: Say, ask: Ask, *,
                page_timeout_s: float = 600, recovery_timeout_s: float = 900) -> Run:
    fault, seed = draw(fault_name, seed)
    result = Run(fault, seed, datetime.now(UTC))
    say(f"Game day ({f'seed {seed}' if seed is not None else 'fault chosen'}): starting a throwaway estate "
        f"in {state_dir} ...")
    with gameday_estate(state_dir) as estate, Learners(estate.drill) as learners:
        say(f"Estate up: {estate.drill.base_url}. For the runbooks' local commands, in your shell:\n"
            f"  source {state_dir / 'estate.env'}\n"
            f"Healthy traffic for {BASELINE_S} s, then a fault goes in. Wait for the page.")
        time.sleep(BASELINE_S)
        if noise := estate.webhook.names() - {"Watchdog"}:
            say(f"(a finding: the healthy estate already paged: {', '.join(sorted(noise))})")
        result.onset = time.monotonic()
        try:
            fault.inject(estate)
            _respond(estate, result, say, ask, page_timeout_s, recovery_timeout_s)
        finally:
            fault.undo(estate)
        result.impact = impact(learners.traffic, result)
    return result


def _respond(estate: GameDayEstate, result: Run, say: Say, ask: Ask, page_timeout_s: float,
             recovery_timeout_s: float) -> None:
    onset = result.onset
    paged_at = _wait_for_page(estate, result, say, page_timeout_s)
    _ask_runbooks(result, paged_at or time.monotonic(), say, ask)
    say("Fix it, following the runbook. Watching the SLIs ...")
    deadline = time.monotonic() + recovery_timeout_s
    while not estate.healthy(result.fault.healthy):
        _print_pages(estate, result, onset, say)
        if time.monotonic() > deadline:
            say(f"Not recovered after {recovery_timeout_s:.0f} s: stopping the game day.")
            break
        time.sleep(POLL_S)
    else:
        result.recovery_s = time.monotonic() - onset
        result.alert_firing_at_recovery = estate.healthy(
            f'ALERTS{{alertname="{result.fault.alert}", alertstate="firing"}}')
        say(f"Recovered: the SLIs are healthy, {result.recovery_s:.0f} s after the onset.")
    result.notes = ask("What did the runbook get wrong? (one line; empty: nothing)").strip()


def _wait_for_page(estate: GameDayEstate, result: Run, say: Say, timeout_s: float) -> float | None:
    deadline = result.onset + timeout_s
    while not _print_pages(estate, result, result.onset, say):
        if time.monotonic() > deadline:
            say(f"Nothing paged within {timeout_s:.0f} s of the fault (a finding). Look around anyway.")
            return None
        time.sleep(0.5)
    result.detection_s = result.pages[0].at - result.onset
    return result.pages[0].at


def _print_pages(estate: GameDayEstate, result: Run, onset: float, say: Say) -> bool:
    """Print pages not yet shown (one per alert); true once anything paged."""
    shown = {n.labels["alertname"] for n in result.pages}
    for page in estate.webhook.firing(onset):
        name = page.labels["alertname"]
        if name not in shown and name != "Watchdog":
            shown.add(name)
            result.pages.append(page)
            say(f"PAGE [{page.labels.get('severity', '?')}] {name}: {page.annotations.get('summary', '')}\n"
                f"  runbook: {page.annotations.get('runbook_url', '(none)')}")
    return bool(result.pages)


def _ask_runbooks(result: Run, paged_at: float, say: Say, ask: Ask) -> None:
    """Which runbook the on-call opens, until the right one (or an empty answer: no other one)."""
    question = "Which runbook are you following? (alert name, file or link; empty: no other)"
    while answer := ask(question).strip():
        name = answer.rstrip("/").rsplit("/", 1)[-1].removesuffix(".md")
        if not (RUNBOOKS / f"{name}.md").is_file():
            say(f"No runbook {name} in runbooks/.")
            continue
        result.opened.append((name, time.monotonic() - paged_at))
        if name == result.fault.alert:
            result.runbook_s = result.opened[-1][1]
            return
        say("Noted.")


def impact(traffic: Traffic, result: Run) -> str:
    """What learners saw from the onset to the recovery (or the end)."""
    until = result.onset + (result.recovery_s or float("inf"))
    seen = [s for s in traffic.samples if result.onset <= s.started < until]
    failed = sum(1 for s in seen if s.status == 0 or s.status >= 500)
    slow = sum(1 for s in seen if s.seconds > SLOW_S)
    return f"{len(seen)} requests: {failed} failed (5xx or no answer), {slow} slower than {SLOW_S:.0f} s"


def render(result: Run, header: bool) -> str:
    def secs(value: float | None, missing: str) -> str:
        return f"{value:.0f} s" if value is not None else missing

    pages = ", ".join(f"{p.labels['alertname']} ({p.labels.get('severity', '?')}, "
                      f"{p.at - result.onset:.0f} s)" for p in result.pages)
    opened = ", ".join(f"{name} ({s:.0f} s)" for name, s in result.opened) or "none"
    lines = ["# Game days", "", "Game days on the local estate, newest last, each appended by `make gameday`",
             "(`chatwizard gameday`). How to run one and what it measures:",
             "[runbooks/operations-manual.md](../../runbooks/operations-manual.md#game-day).", ""
             ] if header else []
    drawn = f"drawn with seed {result.seed}" if result.seed is not None else "chosen"
    lines += [f"## {result.started:%Y-%m-%d %H:%M} UTC: {result.fault.name} ({drawn})", "",
              "| measure | result |", "|---|---|",
              f"| fault | {result.fault.what} |",
              f"| should page | {result.fault.alert} |",
              f"| paged (onset → page) | {pages or 'nothing'} |",
              f"| detection (onset → first page) | {secs(result.detection_s, 'never')} |",
              f"| runbooks opened (page → answer) | {opened} |",
              f"| time to the right runbook | {secs(result.runbook_s, 'never named')} |",
              f"| recovery (onset → SLIs healthy) | {secs(result.recovery_s, 'not recovered')} |",
              f"| learners' requests, onset → recovery | {result.impact} |",
              f"| alert still firing at recovery | {'yes' if result.alert_firing_at_recovery else 'no'} |",
              f"| what the runbook got wrong | {result.notes.replace('|', '/') or 'nothing noted'} |", ""]
    return "\n".join(lines)


def append_report(result: Run, out: Path) -> str:
    """The run's report, appended to ``out`` (created with its header if new)."""
    new = not out.exists()
    report = render(result, header=new)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(report if new else "\n" + report)
    return report
