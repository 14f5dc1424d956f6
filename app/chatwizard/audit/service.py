"""The audit trail: security events as a structured log line and an append-only table row.

Floods (a key hammering past its limit, a scanner guessing keys) would turn the trail into a write
amplifier, so each process stores the same event from the same source at most once a minute; the
repeats are still logged and counted (chatwizard_audit_events_total{result="repeat"}).
"""

from __future__ import annotations

import ipaddress
import time
from datetime import datetime
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
REPEAT_WINDOW_S = 60.0
INSERT = """
INSERT INTO audit_events (action, outcome, actor_user, actor_key, source, target, detail)
VALUES ($1, $2, $3, $4, $5::inet, $6, $7::jsonb)
"""
_last_stored: dict[tuple[str, str, str], float] = {}


def source_of(connection: HTTPConnection | None) -> str | None:
    return connection.client.host if connection is not None and connection.client else None


def address(source: str | None) -> str | None:
    """The source as an IP address; test clients and Unix sockets report names, which are only logged."""
    try:
        return str(ipaddress.ip_address(source)) if source else None
    except ValueError:
        return None


def _first_in_window(action: str, source: str | None, actor: UUID | None) -> bool:
    now = time.monotonic()
    key = (action, source or "", str(actor or ""))
    if now - _last_stored.get(key, -REPEAT_WINDOW_S) < REPEAT_WINDOW_S:
        return False
    if len(_last_stored) > 10_000:  # bounded under a spray from many addresses
        _last_stored.clear()
    _last_stored[key] = now
    return True


async def record(services: Services, action: str, outcome: str, *, connection: HTTPConnection | None = None,
                 principal: Principal | None = None, target: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """Log and store one security event; never fails the request that caused it."""
    source = source_of(connection)
    actor_user = principal.user_id if principal else None
    actor_key = principal.key_id if principal else None
    log.info("audit", action=action, outcome=outcome, actor_user=actor_user and str(actor_user),
             actor_key=actor_key and str(actor_key), source=source, target=target, **(detail or {}))
    if outcome != "success" and not _first_in_window(action, source, actor_user):
        metrics.AUDIT_EVENTS.labels(action, "repeat").inc()
        return
    try:
        await services.db.write(lambda c: c.execute(
            INSERT, action, outcome, actor_user, actor_key, address(source), target,
            orjson.dumps(detail or {}).decode(),
        ), transaction=False)
    except (OSError, asyncpg.PostgresError) as exc:
        metrics.AUDIT_EVENTS.labels(action, "failed").inc()
        log.error("audit_write_failed", action=action, error=type(exc).__name__)
        return
    metrics.AUDIT_EVENTS.labels(action, "stored").inc()


async def events(conn: asyncpg.Connection, action: str | None, since: datetime | None,
                 limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, at, action, outcome, actor_user, actor_key, host(source) AS source, target, detail "
        "FROM audit_events WHERE ($1::text IS NULL OR action = $1) AND ($2::timestamptz IS NULL OR at >= $2) "
        "ORDER BY at DESC, id DESC LIMIT $3", action, since, limit,
    )
    return [{**dict(r), "detail": orjson.loads(r["detail"])} for r in rows]


async def forget(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Erasure: the user's past events stay (they are the security record) but no longer name them.
    The app's role may not update the table; this function, run as its owner, may (migration 0005)."""
    await conn.execute("SELECT audit_forget($1)", user_id)
