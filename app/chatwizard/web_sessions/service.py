"""Browser sign-in: single-use links by mail (invitations and sign-in links) and cookie sessions.

A link's token and a session's id are 256 random bits; only their SHA-256 is stored (as for API keys).
Sessions are looked up on the primary on every request, uncached: a logout, an erasure or a tier change
deletes the row and counts at once in every process. Their cache entry (``session_cache``) holds nothing;
deleting it tells open WebSockets to check their session again.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg

from chatwizard.accounts.service import EMAIL, USER_COLUMNS, create_user, find_user
from chatwizard.core.crypto import FieldCipher
from chatwizard.core.mail import send_mail
from chatwizard.core.security import hash_secret
from chatwizard.core.services import Services
from chatwizard.core.settings import Settings

LinkKind = Literal["invitation", "sign_in"]
LINK_EMAIL = "sign_in_links.email"  # one of crypto.ENCRYPTED_COLUMNS; its blind index is users.email's
TOUCH_RESOLUTION = timedelta(minutes=1)  # write last_seen_at at most this often (or a quarter of idle)
LINK_PAGES: dict[LinkKind, str] = {"invitation": "invite", "sign_in": "sign-in"}
SESSION_LOOKUP = """
SELECT s.id, s.user_id, u.tier, s.created_at, s.last_seen_at, s.expires_at
FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.session_hash = $1
"""


class LinkRefused(Exception):
    """A link cannot be used: ``status`` and ``detail`` say why (the API's answer)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def session_cache(session_hash: bytes) -> str:
    return f"cw:session:{session_hash.hex()}"


def link_url(settings: Settings, kind: LinkKind, token: str) -> str:
    """The page that uses the link; the token rides in the fragment, which never reaches a server."""
    return f"{settings.public_url}/{LINK_PAGES[kind]}#token={token}"


async def issue_link(conn: asyncpg.Connection, cipher: FieldCipher, kind: LinkKind, email: str, tier: str,
                     ttl_s: int, *, user_id: UUID | None = None,
                     invited_by: UUID | None = None) -> tuple[str, dict[str, Any]]:
    """Store a link; return (its token, the row). The token exists only here and in the mail."""
    token = secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO sign_in_links (token_hash, kind, email, email_index, tier, user_id, invited_by, "
        "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8)) "
        "RETURNING id, tier, expires_at",
        hash_secret(token), kind, cipher.encrypt(email, LINK_EMAIL), cipher.blind_index(email, EMAIL), tier,
        user_id, invited_by, ttl_s)
    return token, {**row, "email": email}


async def redeem_link(conn: asyncpg.Connection, cipher: FieldCipher,
                      token: str) -> tuple[dict[str, Any], bool]:
    """Use a link once (in the caller's transaction): the account it opens, and whether it was made now.
    Raises LinkRefused for an unknown, used or expired link."""
    link = await conn.fetchrow("SELECT id, kind, email, email_index, tier, user_id, expires_at, used_at "
                               "FROM sign_in_links WHERE token_hash = $1 FOR UPDATE", hash_secret(token))
    if link is None:
        raise LinkRefused(400, "this link is not valid: check that it was copied whole, or ask for a new one")
    if link["used_at"] is not None:
        raise LinkRefused(410, "this link has been used already: ask for a new sign-in link")
    if link["expires_at"] <= datetime.now(UTC):
        raise LinkRefused(410, "this link has expired: ask for a new one")
    await conn.execute("UPDATE sign_in_links SET used_at = now(), email = NULL, email_index = NULL "
                       "WHERE id = $1", link["id"])
    user_id = link["user_id"] or await conn.fetchval("SELECT id FROM users WHERE email_index = $1",
                                                     link["email_index"])
    if user_id is None:  # an invitation's first use makes the account
        return await create_user(conn, cipher, cipher.decrypt(link["email"], LINK_EMAIL), link["tier"]), True
    user = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return cipher.readable(user, "users"), False


async def start_session(conn: asyncpg.Connection, user_id: UUID, lifetime_s: int) -> tuple[str, datetime]:
    """A new session for the user: (the cookie's value, its absolute expiry)."""
    session = secrets.token_urlsafe(32)
    expires_at = await conn.fetchval(
        "INSERT INTO web_sessions (session_hash, user_id, expires_at) "
        "VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING expires_at",
        hash_secret(session), user_id, lifetime_s)
    return session, expires_at


async def lookup_session(services: Services, session_hash: bytes) -> dict[str, Any] | None:
    row = await services.db.read(lambda c: c.fetchrow(SESSION_LOOKUP, session_hash), fresh=True)
    return dict(row) if row is not None else None


def expired(record: dict[str, Any], settings: Settings, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    idle = timedelta(seconds=settings.session_idle_s)
    return record["expires_at"] <= now or record["last_seen_at"] + idle <= now


async def touch(services: Services, record: dict[str, Any]) -> None:
    """Note the session's use, so idleness is measured from now (at most every TOUCH_RESOLUTION)."""
    now = datetime.now(UTC)
    resolution = min(TOUCH_RESOLUTION, timedelta(seconds=services.settings.session_idle_s / 4))
    if now - record["last_seen_at"] >= resolution:
        await services.db.write(lambda c: c.execute(
            "UPDATE web_sessions SET last_seen_at = $2 WHERE id = $1", record["id"], now), transaction=False)


async def end_session(services: Services, session_hash: bytes) -> None:
    await services.db.write(lambda c: c.execute("DELETE FROM web_sessions WHERE session_hash = $1",
                                                session_hash), transaction=False)
    await services.cache.delete(session_cache(session_hash))


async def end_user_sessions(conn: asyncpg.Connection, user_id: UUID) -> list[str]:
    """End every session of the user (in the caller's transaction); the cache entries to delete after it,
    so open WebSockets check again."""
    rows = await conn.fetch("DELETE FROM web_sessions WHERE user_id = $1 RETURNING session_hash", user_id)
    return [session_cache(r["session_hash"]) for r in rows]


def link_mail(settings: Settings, kind: LinkKind, token: str) -> tuple[str, str]:
    """(subject, plain-text body) of the mail carrying a link."""
    url = link_url(settings, kind, token)
    if kind == "invitation":
        minutes = settings.invitation_ttl_s // 60
        return "You are invited to Chat Wizard", (
            f"You have been invited to Chat Wizard, the assistant that answers your questions with "
            f"learning videos.\n\nOpen this link to join (it works once, for {minutes} minutes):\n\n{url}\n\n"
            "If you did not expect this invitation, ignore this mail.\n")
    minutes = settings.sign_in_link_ttl_s // 60
    return "Your Chat Wizard sign-in link", (
        f"Open this link to sign in to Chat Wizard (it works once, for {minutes} minutes):\n\n{url}\n\n"
        "If you did not ask to sign in, ignore this mail: nobody can sign in without the link.\n")


async def invite(services: Services, email: str, tier: str, invited_by: UUID | None) -> dict[str, Any]:
    """Store an invitation and mail it, in one transaction: if the mail cannot be handed to the SMTP
    server, no invitation exists (raises MailUnavailable). Raises LinkRefused (409) for an address that
    already has an account."""
    settings = services.settings

    async def create(conn: asyncpg.Connection) -> dict[str, Any]:
        if await find_user(conn, services.cipher, email) is not None:
            raise LinkRefused(409, "this address already has an account: its owner can ask for a sign-in "
                                   "link")
        token, row = await issue_link(conn, services.cipher, "invitation", email, tier,
                                      settings.invitation_ttl_s, invited_by=invited_by)
        await send_mail(settings, email, *link_mail(settings, "invitation", token))
        return row

    return await services.db.write(create)


async def mail_sign_in_link(services: Services, email: str) -> None:
    """Mail a sign-in link if the address has an account; nothing otherwise (the caller says the same)."""
    settings = services.settings

    async def issue(conn: asyncpg.Connection) -> str | None:
        user_id = await find_user(conn, services.cipher, email)
        # Service accounts are machines: they hold keys and never sign in with a browser.
        tier = await conn.fetchval("SELECT tier FROM users WHERE id = $1 AND tier <> 'service'", user_id)
        if tier is None:
            return None
        token, _ = await issue_link(conn, services.cipher, "sign_in", email, tier,
                                    settings.sign_in_link_ttl_s, user_id=user_id)
        return token

    token = await services.db.write(issue)
    if token is not None:
        await send_mail(settings, email, *link_mail(settings, "sign_in", token))
