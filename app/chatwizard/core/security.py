"""API keys and the authorisation gate every route passes through.

Key format: ``cwk_`` + 30 random base62 characters (~178 bits) + a 6-character CRC32 checksum, in
the style of GitHub's tokens: the prefix lets secret scanners find leaked keys, the checksum lets us
refuse typos and random guesses without touching the database. Only SHA-256 of a key is stored;
a high-entropy key needs no slow hash.

Browsers authenticate with a session cookie instead (web_sessions/): ``authenticate`` accepts either,
and a Bearer key wins when both come. A cookie session's CSRF token is derived from the cookie's value
(an HMAC keyed by it), so it is never stored and only a page that was told it can send it.

Which role each route needs lives in one table, ``chatwizard.policy.ROUTE_POLICY``; a route missing
from it is refused at run time and fails the route-matrix test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from chatwizard.core import metrics

KEY_PREFIX = "cwk_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 30
_CHECKSUM_CHARS = 6
_KEY_SHAPE = re.compile(f"{KEY_PREFIX}([0-9A-Za-z]{{{_RANDOM_CHARS}}})([0-9A-Za-z]{{{_CHECKSUM_CHARS}}})")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_CHARS)


def generate_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return KEY_PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    shape = _KEY_SHAPE.fullmatch(key)
    return shape is not None and secrets.compare_digest(_checksum(shape[1]), shape[2])


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def display_hint(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6] + "…"


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    tier: str
    key_id: UUID | None  # None: a browser session
    scopes: tuple[str, ...]
    expires_at: datetime | None = None
    session_hash: bytes | None = None  # set for a browser (cookie) session, with its CSRF token
    csrf_token: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.tier == "admin"


def unauthorized(reason: str) -> HTTPException:
    metrics.AUTH_FAILURES.labels(reason).inc()
    return HTTPException(401, detail=_AUTH_MESSAGES[reason], headers={"WWW-Authenticate": "Bearer"})


_AUTH_MESSAGES = {
    "missing": "missing API key: send it as 'Authorization: Bearer <key>'",
    "malformed": "invalid API key",
    "unknown": "invalid API key",
    "revoked": "API key revoked",
    "expired": "API key expired",
    "no_session": "no browser session: sign in (this endpoint does not answer for an API key)",
    "session_unknown": "your session has ended: sign in again",
    "session_expired": "your session has expired: sign in again",
}
SESSION_COOKIE = "__Host-chatwizard_session"  # __Host-: Secure, Path=/, no Domain, so no subdomain sets it


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"chatwizard csrf", hashlib.sha256).hexdigest()


def bearer_key(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def key_state(record: dict[str, Any], now: datetime | None = None) -> str | None:
    """Why a stored key cannot be used, or None if it can."""
    now = now or datetime.now(UTC)
    if record["revoked_at"] is not None:
        return "revoked"
    if record["expires_at"] is not None and record["expires_at"] <= now:
        return "expired"
    return None


async def authenticate(connection: HTTPConnection) -> Principal:
    """Resolve the caller's key to a principal, or raise 401 saying what is wrong."""
    from chatwizard.accounts import service as accounts

    key = bearer_key(connection)
    if key is None and (session := connection.cookies.get(SESSION_COOKIE)):
        return await authenticate_session(connection, session)
    if key is None:
        raise unauthorized("missing")
    if not well_formed(key):
        raise unauthorized("malformed")
    record = await accounts.lookup_key(connection.app.state.services, hash_secret(key))
    if record is None:
        raise unauthorized("unknown")
    problem = key_state(record)
    if problem:
        raise unauthorized(problem)
    principal = Principal(record["user_id"], record["tier"], record["key_id"], tuple(record["scopes"]),
                          record["expires_at"])
    connection.state.principal = principal
    return principal


def same_origin(connection: HTTPConnection) -> bool:
    public = connection.app.state.services.settings.public_url
    return secrets.compare_digest(connection.headers.get("origin", "").encode(), public.encode())


async def authenticate_session(connection: HTTPConnection, session: str) -> Principal:
    """Resolve a session cookie to a principal. A browser sends its cookies with any site's WebSocket
    (no CORS there), so a cookie WebSocket must come from the app's own page."""
    from chatwizard.web_sessions import service as sessions

    if connection.scope["type"] == "websocket" and not same_origin(connection):
        metrics.AUTH_FAILURES.labels("foreign_origin").inc()
        raise HTTPException(403, detail="a browser session may open this WebSocket only from the app's page")
    services = connection.app.state.services
    record = await sessions.lookup_session(services, hash_secret(session))
    if record is None:
        raise unauthorized("session_unknown")
    if sessions.expired(record, services.settings):
        raise unauthorized("session_expired")
    await sessions.touch(services, record)
    principal = Principal(record["user_id"], record["tier"], None, (), record["expires_at"],
                          hash_secret(session), csrf_token(session))
    connection.state.principal = principal
    return principal


def lookup_cache(connection: HTTPConnection) -> str:
    """The cache entry whose deletion means the connection's credential may have stopped working."""
    from chatwizard.accounts import service as accounts
    from chatwizard.web_sessions import service as sessions

    session_hash = connection.state.principal.session_hash
    if session_hash is not None:
        return sessions.session_cache(session_hash)
    return accounts.key_cache(hash_secret(bearer_key(connection) or ""))


async def until_key_stops(connection: HTTPConnection) -> str:
    """Wait while the connection's key (or session) keeps working, and return why it stopped (revoked,
    expired, gone, logged out).

    For long-lived connections (WebSockets): the key is checked again whenever its lookup entry is deleted
    in any process (revocation, rotation, erasure, a tier change: a pub/sub delivery away) and when it
    expires; each check refreshes ``connection.state.principal``."""
    services = connection.app.state.services
    with services.cache.watch(lookup_cache(connection)) as changed:
        while True:
            expires_at = connection.state.principal.expires_at
            timeout = None if expires_at is None else (expires_at - datetime.now(UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), None if timeout is None else max(0.0, timeout))
            changed.clear()
            try:
                await authenticate(connection)
            except HTTPException as refused:
                return str(refused.detail)
            except (OSError, asyncpg.PostgresError):  # the database is away: check again shortly
                await asyncio.sleep(1)
                changed.set()


Authenticated = Annotated[Principal, Depends(authenticate)]
