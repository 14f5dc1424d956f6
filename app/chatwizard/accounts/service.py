"""Users and API keys. Keys are shown once, stored as SHA-256, cached briefly in Redis for lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from chatwizard.core.crypto import FieldCipher
from chatwizard.core.security import Principal, display_hint, generate_key, hash_secret
from chatwizard.core.services import Services

KEY_CACHE_TTL_S = 60
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most this often per key

KEY_LOOKUP = """
SELECT k.id AS key_id, k.user_id, u.tier, k.scopes, k.expires_at, k.revoked_at, k.last_used_at
FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1
"""
USER_COLUMNS = "id, email, tier, created_at"  # email is encrypted: read rows through cipher.readable
EMAIL = "users.email"  # one of crypto.ENCRYPTED_COLUMNS
KEY_COLUMNS = "id, name, display_hint, scopes, created_at, expires_at, last_used_at, revoked_at"


def key_cache(key_hash: bytes) -> str:
    return f"cw:key:{key_hash.hex()}"


def _encode(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v)
            for k, v in record.items()}


def _decode(cached: dict[str, Any]) -> dict[str, Any]:
    record = dict(cached)
    for field in ("expires_at", "revoked_at", "last_used_at"):
        if record[field] is not None:
            record[field] = datetime.fromisoformat(record[field])
    record["key_id"], record["user_id"] = UUID(record["key_id"]), UUID(record["user_id"])
    return record


async def lookup_key(services: Services, key_hash: bytes) -> dict[str, Any] | None:
    cached = await services.cache.get_json(key_cache(key_hash), near=True, parse=_decode)
    if cached is not None:
        return cached
    # The primary, so a revocation counts at once.
    row = await services.db.read(lambda c: c.fetchrow(KEY_LOOKUP, key_hash), fresh=True)
    if row is None:
        return None
    record = dict(row)
    now = datetime.now(UTC)
    if record["last_used_at"] is None or now - record["last_used_at"] > LAST_USED_RESOLUTION:
        await services.db.write(
            lambda c: c.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", record["key_id"], now)
        )
        record["last_used_at"] = now
    await services.cache.set_json(key_cache(key_hash), _encode(record), KEY_CACHE_TTL_S)
    return record


async def create_user(conn: asyncpg.Connection, cipher: FieldCipher, email: str, tier: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"INSERT INTO users (email, email_index, tier) VALUES ($1, $2, $3) RETURNING {USER_COLUMNS}",
        cipher.encrypt(email, EMAIL), cipher.blind_index(email, EMAIL), tier,
    )
    return cipher.readable(row, "users")


async def find_user(conn: asyncpg.Connection, cipher: FieldCipher, email: str) -> UUID | None:
    query = "SELECT id FROM users WHERE email_index = $1"
    return await conn.fetchval(query, cipher.blind_index(email, EMAIL))


async def index_emails(conn: asyncpg.Connection, cipher: FieldCipher) -> int:
    """Encrypt and index the addresses written before e-mail encryption, or without a ring (their index
    was keyed by nothing) before that was refused (run by migrate)."""
    rows = await conn.fetch("SELECT id, email FROM users WHERE email_index IS NULL OR email NOT LIKE 'enc:%'")
    await conn.executemany("UPDATE users SET email = $2, email_index = $3 WHERE id = $1", [
        (r["id"], cipher.encrypt(r["email"], EMAIL), cipher.blind_index(r["email"], EMAIL)) for r in rows])
    return len(rows)


class KeyRefused(Exception):
    """A key may not be minted: ``status`` and ``detail`` say why (the API's answer)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


ACTIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


def check_mint(caller: Principal | None, tier: str, scopes: list[str], expires_at: datetime | None) -> None:
    """A key never obtains a wider key: no scope, no later expiry, no tier it does not hold itself.
    Every route that hands out a key (create, rotate, admin create) passes here; ``caller`` None is an
    operator at the CLI."""
    if caller is None:
        return
    if caller.scopes and not (scopes and set(scopes) <= set(caller.scopes)):
        raise KeyRefused(403, "a scoped key may only obtain keys with a subset of its scopes "
                              f"({', '.join(caller.scopes)})")
    if caller.expires_at is not None and (expires_at is None or expires_at > caller.expires_at):
        raise KeyRefused(403, "an expiring key may only obtain keys that expire no later than it "
                              f"(expires_at at most {caller.expires_at.isoformat()})")
    if tier != caller.tier and caller.tier != "admin":
        raise KeyRefused(403, f"a {caller.tier} key may not obtain a key of the {tier} tier")


async def lock_user(conn: asyncpg.Connection, user_id: UUID) -> tuple[str, int] | None:
    """Lock the user's row for this transaction (so concurrent mints count one after another); return
    their tier and active keys, or None if there is no such user."""
    tier = await conn.fetchval("SELECT tier FROM users WHERE id = $1 FOR UPDATE", user_id)
    if tier is None:
        return None
    active = await conn.fetchval(f"SELECT count(*) FROM api_keys WHERE user_id = $1 AND {ACTIVE}", user_id)
    return tier, active


def too_many_keys(tier: str, active: int, bound: int) -> KeyRefused:
    return KeyRefused(409, f"this account holds {active} active API keys and a {tier} account may hold "
                           f"{bound}; revoke one (DELETE /v1/keys/{{id}}) first")


async def mint_key(services: Services, caller: Principal | None, user_id: UUID, name: str, *,
                   scopes: list[str], expires_at: datetime | None) -> tuple[str, dict[str, Any]] | None:
    """Create a key for ``user_id`` within the caller's powers and the tier's bound on active keys;
    None if there is no such user. Raises KeyRefused."""
    async def mint(conn: asyncpg.Connection) -> tuple[str, dict[str, Any]] | None:
        locked = await lock_user(conn, user_id)
        if locked is None:
            return None
        tier, active = locked
        check_mint(caller, tier, scopes, expires_at)
        bound = services.settings.max_active_keys(tier)
        if active >= bound:
            raise too_many_keys(tier, active, bound)
        return await create_key(conn, user_id, name, scopes=scopes, expires_at=expires_at)

    return await services.db.write(mint)


async def create_key(conn: asyncpg.Connection, user_id: UUID, name: str, *, scopes: list[str] | None = None,
                     expires_at: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """Insert a key, unchecked (mint_key checks); return (plaintext key, stored record). The plaintext
    exists only here."""
    key = generate_key()
    row = await conn.fetchrow(
        f"INSERT INTO api_keys (user_id, name, display_hint, key_hash, scopes, expires_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}",
        user_id, name, display_hint(key), hash_secret(key), scopes or [], expires_at,
    )
    return key, dict(row)


async def list_keys(conn: asyncpg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at", user_id
    )
    return [dict(r) for r in rows]


async def rotate_key(services: Services, caller: Principal, key_id: UUID,
                     overlap: timedelta) -> tuple[str, dict[str, Any]] | None:
    """A new key with the same name, scopes and expiry; the old one keeps working for ``overlap``, then
    expires. The caller must be able to mint it (check_mint); the account may go one key over its bound
    for the overlap. Raises KeyRefused."""
    async def rotate(conn: asyncpg.Connection) -> tuple[str, dict[str, Any], bytes] | None:
        locked = await lock_user(conn, caller.user_id)
        old = await conn.fetchrow(f"SELECT name, key_hash, scopes, expires_at FROM api_keys WHERE id = $1 "
                                  f"AND user_id = $2 AND {ACTIVE} FOR UPDATE", key_id, caller.user_id)
        if locked is None or old is None:
            return None
        tier, active = locked
        check_mint(caller, tier, old["scopes"], old["expires_at"])
        bound = services.settings.max_active_keys(tier)
        if active > bound:
            raise too_many_keys(tier, active, bound)
        await conn.execute("UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, 'infinity'), "
                           "now() + $2) WHERE id = $1", key_id, overlap)
        key, row = await create_key(conn, caller.user_id, old["name"], scopes=old["scopes"],
                                    expires_at=old["expires_at"])
        return key, row, old["key_hash"]

    rotated = await services.db.write(rotate)
    if rotated is None:
        return None
    key, row, old_hash = rotated
    await services.cache.delete(key_cache(old_hash))  # the shortened expiry applies at once
    return key, row


async def revoke_key(services: Services, user_id: UUID | None, key_id: UUID) -> bool:
    """Revoke a key (of ``user_id`` unless None: operators); drop it from the lookup cache at once."""
    key_hash = await services.db.write(lambda c: c.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
        "AND ($2::uuid IS NULL OR user_id = $2) RETURNING key_hash", key_id, user_id,
    ))
    if key_hash is None:
        return False
    await services.cache.delete(key_cache(key_hash))
    return True


async def change_tier(services: Services, user_id: UUID, tier: str) -> dict[str, Any] | None:
    """Set a user's tier; their keys' cached lookups are dropped so the new role applies at once, and their
    browser sessions end (a new role, a new session: they sign in again)."""
    from chatwizard.web_sessions.service import end_user_sessions  # it builds on this module

    async def change(conn: asyncpg.Connection) -> dict[str, Any] | None:
        previous = await conn.fetchval("SELECT tier FROM users WHERE id = $1 FOR UPDATE", user_id)
        if previous is None:
            return None
        user = await conn.fetchrow(
            f"UPDATE users SET tier = $2 WHERE id = $1 RETURNING {USER_COLUMNS}", user_id, tier)
        hashes = [r["key_hash"] for r in await conn.fetch("SELECT key_hash FROM api_keys WHERE user_id = $1",
                                                          user_id)]
        return {"previous": previous, "user": services.cipher.readable(user, "users"), "hashes": hashes,
                "sessions": await end_user_sessions(conn, user_id)}

    changed = await services.db.write(change)
    if changed is not None:
        for key_hash in changed.pop("hashes"):
            await services.cache.delete(key_cache(key_hash))
        await services.cache.delete(*changed.pop("sessions"))
    return changed
