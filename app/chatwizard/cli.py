"""The one entry point: ``chatwizard --help``."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from uuid import UUID

import asyncpg
import typer

from chatwizard.core.observability import configure_logging
from chatwizard.core.services import Services
from chatwizard.core.settings import get_settings
from chatwizard.estate.ports import EstatePorts

if TYPE_CHECKING:
    from chatwizard.estate.backup import BackupStore
from chatwizard.videos.sample import SAMPLE_DIR

app = typer.Typer(help="Chat Wizard: the service, its local estate and operator commands.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
catalogue_app = typer.Typer(help="The video catalogue.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(catalogue_app, name="catalogue")
T = TypeVar("T")


def with_services(work: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        services = await Services.start(get_settings())
        try:
            return await work(services)
        finally:
            await services.stop()

    return asyncio.run(main())


@app.command()
def up(
    state_dir: Annotated[Path, typer.Option(envvar="CHATWIZARD_STATE_DIR", help="where data persists")]
    = Path(".estate"),
    app_port: int = EstatePorts.app, metrics_port: int = EstatePorts.metrics,
    postgres_port: int = EstatePorts.primary, replica_port: int = EstatePorts.replica,
    redis_port: int = EstatePorts.redis, prometheus_port: int = EstatePorts.prometheus,
    alertmanager_port: int = EstatePorts.alertmanager,
    postgres_exporter_port: int = EstatePorts.postgres_exporter,
    redis_exporter_port: int = EstatePorts.redis_exporter,
    blackbox_exporter_port: int = EstatePorts.blackbox_exporter,
    s3_port: int = EstatePorts.s3,
) -> None:
    """Start the whole local estate (Postgres primary + replica, Redis, app, monitoring); Ctrl-C stops it."""
    from chatwizard.estate.up import run_estate

    run_estate(state_dir.resolve(), EstatePorts(
        app_port, metrics_port, postgres_port, replica_port, redis_port, prometheus_port, alertmanager_port,
        postgres_exporter_port, redis_exporter_port, blackbox_exporter_port, s3_port))


@app.command()
def serve() -> None:
    """Run the API under gunicorn with uvicorn workers (settings from CHATWIZARD_* variables)."""
    settings = get_settings()
    multiproc = settings.metrics_multiproc_dir or os.path.join(
        tempfile.gettempdir(), f"chatwizard-metrics-{settings.port}")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    os.execv(gunicorn, [  # noqa: S606 - replaces this process; no shell involved
        gunicorn, "-c", "python:chatwizard.gunicorn_conf", "chatwizard.main:create_app()"])


@app.command()
def migrate() -> None:
    """Apply pending SQL migrations to the primary (a no-op when up to date); with
    CHATWIZARD_APP_DB_PASSWORD set, also create the app's own login or set its password."""
    from chatwizard.accounts.service import index_emails
    from chatwizard.core.crypto import FieldCipher
    from chatwizard.core.migrate import ensure_app_login
    from chatwizard.core.migrate import migrate as apply

    settings = get_settings()
    dsn = settings.database_url.get_secret_value()
    applied = asyncio.run(apply(dsn))
    typer.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    if settings.app_db_password is not None:
        asyncio.run(ensure_app_login(dsn, settings.app_db_login, settings.app_db_password.get_secret_value()))
        typer.echo(f"app login {settings.app_db_login} is ready")

    async def encrypt_old_emails() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            ring = settings.field_keys.get_secret_value() if settings.field_keys else None
            return await index_emails(conn, FieldCipher(ring))
        finally:
            await conn.close()

    if indexed := asyncio.run(encrypt_old_emails()):
        typer.echo(f"encrypted and indexed {indexed} e-mail addresses written before field encryption")


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(exists=True, help="videos.list JSON file or folder")],
) -> None:
    """Embed and upsert videos from YouTube Data API videos.list responses."""
    from chatwizard.videos.ingest import IngestError
    from chatwizard.videos.ingest import ingest as run_ingest

    try:
        result = with_services(lambda s: run_ingest(s, path))
    except IngestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{result['items']} videos read, {result['changed']} added or changed")


@app.command()
def retention() -> None:
    """Delete chat history and audit rows older than their retention periods (run daily)."""
    from chatwizard.privacy.service import apply_retention

    settings = get_settings()

    async def work() -> dict[str, int]:
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            return await apply_retention(conn, settings.retention_chat_days, settings.retention_audit_days)
        finally:
            await conn.close()

    deleted = asyncio.run(work())
    typer.echo("deleted: " + ", ".join(f"{n} {table}" for table, n in deleted.items()))


@app.command("field-key")
def field_key(version: Annotated[str, typer.Argument(help="the new key's version, e.g. v2")]) -> None:
    """Print a new field-encryption key entry; put it first in CHATWIZARD_FIELD_KEYS to rotate."""
    from chatwizard.core.crypto import new_key_entry

    if not version.isalnum():
        typer.echo("error: the version must be letters and digits, e.g. v2", err=True)
        raise typer.Exit(2)
    typer.echo(new_key_entry(version))


@app.command()
def reencrypt() -> None:
    """After a key rotation: rewrite personal text under the first key of CHATWIZARD_FIELD_KEYS, so
    older keys can leave the ring. Safe beside live traffic and to run again; run it once every pod
    has the new ring."""
    from chatwizard.core.crypto import FieldCipher, FieldKeyError
    from chatwizard.privacy.reencrypt import Rewritten
    from chatwizard.privacy.reencrypt import reencrypt as rewrite

    settings = get_settings()
    cipher = FieldCipher(settings.field_keys.get_secret_value() if settings.field_keys else None)

    async def work() -> dict[str, Rewritten]:
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            return await rewrite(conn, cipher)
        finally:
            await conn.close()

    try:
        outcome = asyncio.run(work())
    except FieldKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for column, result in outcome.items():
        lost = ", ".join(f"{n} under {version}" for version, n in sorted(result.unreadable.items()))
        typer.echo(f"{column}: {result.rewritten} re-encrypted under {cipher.current}"
                   + (f"; left as they are, their key is not in the ring: {lost}" if lost else ""))
    typer.echo(f"The e-mail blind index stays keyed by the ring's last entry ({list(cipher.keys)[-1]}): "
               "keep that entry; any other older entry may now go.")
    if any(result.unreadable for result in outcome.values()):
        raise typer.Exit(1)


@app.command()
def seed() -> None:
    """Ingest the sample catalogue if the catalogue is empty (the local estate's first start)."""
    from chatwizard.videos.ingest import ingest as run_ingest

    async def work(s: Services) -> int:
        if not s.settings.sample_catalogue:
            return 0
        if await s.db.write(lambda c: c.fetchval("SELECT EXISTS (SELECT 1 FROM videos)")):
            return 0
        typer.echo("ingesting the sample catalogue (first start) ...")
        return (await run_ingest(s, SAMPLE_DIR))["items"]

    typer.echo(f"{with_services(work)} sample videos ingested")


@catalogue_app.command("generate")
def catalogue_generate(
    out: Annotated[Path, typer.Option(help="folder for the videos.list JSON pages")] = SAMPLE_DIR,
    count: Annotated[int, typer.Option(min=1)] = 400,
    seed: int = 7,
) -> None:
    """Write a SAMPLE catalogue (generated, not real YouTube data) in videos.list format."""
    from chatwizard.videos.sample import write_catalogue

    pages = write_catalogue(out, count, seed)
    typer.echo(f"wrote {count} sample videos in {pages} files to {out}")


@keys_app.command("create")
def keys_create(
    email: Annotated[str, typer.Option(help="the user; created if new")],
    name: Annotated[str, typer.Option(help="which client this key is for")] = "cli",
    tier: Annotated[str, typer.Option(help="free, pro, admin or service (new users)")] = "free",
) -> None:
    """Create an API key and print it once."""
    from chatwizard.accounts import service

    async def work(s: Services) -> str:
        async def create(conn: asyncpg.Connection) -> str:
            user_id = await service.find_user(conn, s.cipher, email)
            if user_id is None:
                user_id = (await service.create_user(conn, s.cipher, email, tier))["id"]
            key, _ = await service.create_key(conn, user_id, name)
            return key

        return await s.db.write(create)

    typer.echo(with_services(work))


@keys_app.command("list")
def keys_list(email: Annotated[str, typer.Option(help="whose keys")]) -> None:
    """List a user's keys (never the keys themselves)."""
    from chatwizard.accounts import service

    async def work(s: Services) -> list[dict[str, object]]:
        async def fetch(conn: asyncpg.Connection) -> list[dict[str, object]]:
            user_id = await service.find_user(conn, s.cipher, email)
            return await service.list_keys(conn, user_id) if user_id else []

        return await s.db.write(fetch)

    for key in with_services(work):
        state = "revoked" if key["revoked_at"] else "active"
        typer.echo(f"{key['id']}  {key['display_hint']}  {key['name']}  {state}  "
                   f"last used {key['last_used_at']}")


@keys_app.command("revoke")
def keys_revoke(key_id: UUID) -> None:
    """Revoke a key by id; it stops working at once."""
    from chatwizard.accounts import service

    if not with_services(lambda s: service.revoke_key(s, None, key_id)):
        typer.echo("no such active key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


@app.command("security-audit")
def security_audit(
    key: Annotated[str, typer.Option(envvar="CHATWIZARD_AUDIT_KEY", help="an API key of the estate")],
    base_url: Annotated[str, typer.Option(help="the running estate (loopback only)")] =
    f"http://127.0.0.1:{EstatePorts.app}",
    out: Annotated[Path, typer.Option(help="where to write the findings")] = Path("docs/security/audit.md"),
) -> None:
    """Bandit, live security headers and bounded sqlmap runs against a running estate; findings to a file."""
    from chatwizard.estate.security_audit import run_audit

    clean = run_audit(base_url.rstrip("/"), key, out)
    typer.echo(f"wrote {out}: {'nothing to fix' if clean else 'FINDINGS to fix'}")
    if not clean:
        raise typer.Exit(1)


StateDir = Annotated[Path, typer.Option(envvar="CHATWIZARD_STATE_DIR", help="the local estate's state")]


@app.command()
def promote(state_dir: StateDir = Path(".estate")) -> None:
    """Failover of the local estate: fence the primary (kill what is left of it) and promote the replica;
    the app, whose primary URL names both nodes, writes to it within seconds."""
    from chatwizard.estate.postgres import PostgresNode, fence_and_promote

    started = time.monotonic()
    state_dir = state_dir.resolve()
    replica = PostgresNode(state_dir / "postgres-replica", 0)
    fence_and_promote(PostgresNode(state_dir / "postgres-primary", 0), replica)
    typer.echo(f"promoted {replica.data_dir} in {time.monotonic() - started:.1f} s; the old primary is "
               "fenced (runbooks/disaster-recovery.md: rebuild a replica before the next failure)")


def backup_store(state_dir: Path) -> BackupStore:
    """Where `chatwizard up` said its backups go, or a clear exit when it never ran there."""
    from chatwizard.estate.backup import BackupStore

    config = state_dir.resolve() / "backup.json"
    if not config.exists():
        typer.echo(f"no backups in {state_dir}: `chatwizard up --state-dir {state_dir}` archives there", err=True)
        raise typer.Exit(1)
    return BackupStore.load(config)


@app.command()
def backup(state_dir: StateDir = Path(".estate")) -> None:
    """Take a base backup of the running local estate's primary now (and apply the retention policy)."""
    from chatwizard.estate.backup import backup_ids, base_backup
    from chatwizard.estate.postgres import PostgresNode

    store = backup_store(state_dir)
    base_backup(PostgresNode(state_dir.resolve() / "postgres-primary", store.primary_port), store)
    typer.echo(f"backups in {store.destination}: {', '.join(backup_ids(store))}")


@app.command()
def restore(
    to: Annotated[Path, typer.Option(help="a new, empty data folder")],
    port: Annotated[int, typer.Option(help="the restored node's port")],
    time_: Annotated[datetime | None, typer.Option(
        "--time", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        help="restore to this time, with its zone, e.g. 2026-12-02T12:00:00+00:00 (default: latest)")] = None,
    state_dir: StateDir = Path(".estate"),
) -> None:
    """Restore the local estate's backups into a new Postgres node, to the latest point or to --time,
    and start it as a primary."""
    from chatwizard.estate.backup import restore as restore_node
    from chatwizard.estate.postgres import BIN, SYSTEM_USER, PostgresNode

    node = PostgresNode(to.resolve(), port)
    started = time.monotonic()
    restore_node(backup_store(state_dir), node, time_)
    as_user = f"runuser -u {SYSTEM_USER} -- " if SYSTEM_USER else ""
    typer.echo(f"restored in {time.monotonic() - started:.0f} s: {node.dsn} (running; stop it with "
               f"{as_user}{BIN / 'pg_ctl'} -D {node.data_dir} stop)")


@app.command()
def drill(
    out: Annotated[Path, typer.Option(help="the report")] = Path("docs/reliability/drills.md"),
    state_dir: Annotated[Path, typer.Option(help="throwaway estates, emptied first")] = Path(".estate-drill"),
    backup_load_s: Annotated[float, typer.Option(help="writes before the loss (> archive timeout)")] = 45,
) -> None:
    """Run every disaster-recovery drill on throwaway estates and write the report with its figures."""
    import shutil

    from chatwizard.estate.drills import run_all

    shutil.rmtree(state_dir, ignore_errors=True)
    report = run_all(state_dir.resolve(), backup_load_s)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    typer.echo(report)


@app.command()
def apidocs(
    out: Annotated[Path, typer.Option(help="where to write the reference")] = Path("docs/api.md"),
) -> None:
    """Regenerate the API reference (docs/api.md) from the app's OpenAPI schema."""
    from chatwizard.apidocs import render
    from chatwizard.main import create_app

    out.write_text(render(create_app().openapi()))
    typer.echo(f"wrote {out}")


def main() -> None:
    configure_logging(get_settings(), stream=sys.stderr)
    app()
