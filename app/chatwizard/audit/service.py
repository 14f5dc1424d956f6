"""The audit trail: security events as a structured log line and an append-only table row.

Every event is logged. Successes (key, role and account changes, exports, erasures) are rare and
stored at once, a row each. Failures and denials come in floods (a scanner guessing keys, a client
hammering past its limit), so each process tallies them by kind (event, outcome, route, source, actor,
detail) and writes the tallies in one statement every FLUSH_S: the first event of a kind within
FLUSH_S, its repeats as one row per WINDOW_S saying how many there were (`occurrences`, from `at` to
`last_at`). The trail thus counts every event, per route and source, and a flood costs one statement
per FLUSH_S and at most two rows per kind a minute per process. Beyond MAX_KINDS kinds (a spray from
many addresses), new kinds are folded per (event, outcome, route), without source or actor, and still
counted. docs/decisions.md ("Audit trail") has the trade-off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import structlog
from starlette.requests import HTTPConnection

from chatwizard.core import metrics
from chatwizard.core.security import Principal
from chatwizard.core.services import Services

log = structlog.get_logger("chatwizard.audit")
FLUSH_S = 2.0  # how long a failure or denial may wait for its row
WINDOW_S = 60.0  # a kind's repeats share one row per window
MAX_KINDS = 2_000  # kinds a process tracks at once; beyond, new kinds are folded
FOLDED = orjson.dumps({"folded": "sources and actors beyond the per-process limit"}).decode()
INSERT = """
INSERT INTO audit_events (action, outcome, actor_user, actor_key, source, target, subject_user, detail,
                          at, last_at, occurrences)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::inet[], $6::text[], $7::uuid[],
                     $8::jsonb[], $9::timestamptz[], $10::timestamptz[], $11::int[])
"""


@dataclass(frozen=True)
class Kind:
    """What makes two events the same for the trail: everything but their time."""
    action: str
    outcome: str
    actor_user: UUID | None
    actor_key: UUID | None
    source: str | None  # an IP address
    target: str | None
    subject_user: UUID | None
    detail: str  # JSON

    def folded(self) -> Kind:
        return Kind(self.action, self.outcome, None, None, None, self.target, None, FOLDED)


@dataclass
class Tally:
    kind: Kind
    first_at: datetime
    last_at: datetime
    count: int = 1


class Tallies:
    """Failures and denials of one process, waiting for their row."""

    def __init__(self) -> None:
        self.pending: dict[Kind, Tally] = {}
        self.due: dict[Kind, float] = {}  # monotonic time from which the kind's next row may be written

    def add(self, kind: Kind, at: datetime, now: float) -> None:
        if kind not in self.due and len(self.due) >= MAX_KINDS:
            kind = kind.folded()
        tally = self.pending.get(kind)
        if tally is None:
            self.pending[kind] = Tally(kind, at, at)
        else:
            tally.count += 1
            tally.last_at = at
        self.due.setdefault(kind, now)

    def take(self, now: float, everything: bool = False) -> list[Tally]:
        """The tallies whose row is due (all of them at shutdown); each kind's window starts again."""
        ready = [kind for kind in self.pending if everything or self.due[kind] <= now]
        for kind in ready:
            self.due[kind] = now + WINDOW_S
        # A kind quiet for a whole window is forgotten: its next event gets a prompt row again.
        for kind in [k for k, t in self.due.items() if t <= now and k not in self.pending]:
            del self.due[kind]
        return [self.pending.pop(kind) for kind in ready]


_tallies = Tallies()


def source_of(connection: HTTPConnection | None) -> str | None:
    return connection.client.host if connection is not None and connection.client else None


def address(source: str | None) -> str | None:
    """The source as an IP address; test clients and Unix sockets report names, which are only logged."""
    try:
        return str(ipaddress.ip_address(source)) if source else None
    except ValueError:
        return None


async def record(services: Services, action: str, outcome: str, *, connection: HTTPConnection | None = None,
                 principal: Principal | None = None, target: str | None = None, subject: UUID | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """Log one security event and store it (failures and denials tallied); never fails the request.
    ``subject`` is the user acted on: a column, never text in ``detail``, so erasure finds it."""
    source = source_of(connection)
    kind = Kind(action, outcome, principal.user_id if principal else None,
                principal.key_id if principal else None, address(source), target, subject,
                orjson.dumps(detail or {}).decode())
    log.info("audit", action=action, outcome=outcome, actor_user=kind.actor_user and str(kind.actor_user),
             actor_key=kind.actor_key and str(kind.actor_key), source=source, target=target,
             subject_user=subject and str(subject), **(detail or {}))
    now = datetime.now(UTC)
    if outcome == "success":
        await write(services, [Tally(kind, now, now)])
    else:
        _tallies.add(kind, now, time.monotonic())


async def write(services: Services, tallies: list[Tally]) -> None:
    """One statement for all the rows; a failure is logged and counted, never raised."""
    columns = [list(column) for column in zip(*(astuple(t.kind) for t in tallies), strict=True)]
    try:
        await services.db.write(lambda c: c.execute(
            INSERT, *columns, [t.first_at for t in tallies],
            [t.last_at if t.count > 1 else None for t in tallies], [t.count for t in tallies],
        ), transaction=False)
    except (OSError, asyncpg.PostgresError) as exc:
        for tally in tallies:
            metrics.AUDIT_EVENTS.labels(tally.kind.action, "failed").inc(tally.count)
        log.error("audit_write_failed", actions=sorted({t.kind.action for t in tallies}),
                  error=type(exc).__name__)
        return
    for tally in tallies:
        metrics.AUDIT_EVENTS.labels(tally.kind.action, "stored").inc()
        if tally.count > 1:
            metrics.AUDIT_EVENTS.labels(tally.kind.action, "repeat").inc(tally.count - 1)


async def flush(services: Services, everything: bool = False) -> None:
    """Write the tallies that are due (all of them when the process stops)."""
    due = _tallies.take(time.monotonic(), everything)
    if due:
        await write(services, due)


async def run_flusher(services: Services) -> None:
    while True:
        await asyncio.sleep(FLUSH_S)
        await flush(services)


async def events(conn: asyncpg.Connection, action: str | None, since: datetime | None,
                 limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, at, last_at, occurrences, action, outcome, actor_user, actor_key, "
        "host(source) AS source, target, subject_user, detail FROM audit_events "
        "WHERE ($1::text IS NULL OR action = $1) AND ($2::timestamptz IS NULL OR at >= $2) "
        "ORDER BY at DESC, id DESC LIMIT $3", action, since, limit,
    )
    return [{**dict(r), "detail": orjson.loads(r["detail"])} for r in rows]


async def forget(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Erasure: the user's past events stay (they are the security record) but no longer name them.
    The app's role may not update the table; this function, run as its owner, may, and only for a user
    already deleted in the same transaction (migration 0006)."""
    await conn.execute("SELECT audit_forget($1)", user_id)
