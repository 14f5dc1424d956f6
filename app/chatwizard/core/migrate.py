"""Plain versioned SQL migrations: ``migrations/NNNN_name.sql`` applied in order, each once.

Each file runs in its own transaction under an advisory lock, so two pods starting together do not
race, and a failed file leaves the schema as it was. Running ``migrate`` again is a no-op.
"""

from __future__ import annotations

from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)
LOCK_ID = 7_245_001  # arbitrary, constant: the advisory lock that serialises migrators


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("chatwizard") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("migration_applied", name=name)
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
        await conn.close()


async def ensure_app_login(dsn: str, login: str, password: str) -> None:
    """Create the app's login in the chatwizard_app role (migration 0005), or set its password."""
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", login)
        verb = "ALTER" if exists else "CREATE"
        # Role statements take no parameters, so Postgres quotes the name and the password for them.
        name, secret = await conn.fetchrow("SELECT quote_ident($1), quote_literal($2)", login, password)
        await conn.execute(f"{verb} ROLE {name} LOGIN PASSWORD {secret}")
        await conn.execute(f"GRANT chatwizard_app TO {name}")
    finally:
        await conn.close()
