"""The one entry point: ``chatwizard --help``."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from uuid import UUID

import asyncpg
import typer

from chatwizard.core.logs import configure_logging
from chatwizard.core.services import Services
from chatwizard.core.settings import get_settings
from chatwizard.videos.sample import SAMPLE_DIR

app = typer.Typer(help="Chat Wizard: the service, its local estate and operator commands.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
catalogue_app = typer.Typer(help="The video catalogue.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(catalogue_app, name="catalogue")
T = TypeVar("T")
ESTATE_COMMANDS = ("up", "security-audit", "promote", "start-redis", "backup", "restore", "drill", "gameday")


def development_only(cli: typer.Typer) -> None:
    """Stand-ins for the local estate's commands where it is not installed (the production image)."""
    for name in ESTATE_COMMANDS:
        loose = {"ignore_unknown_options": True, "allow_extra_args": True}  # any arguments: same answer
        cli.command(name, help="(development only: not in this installation)", context_settings=loose)(
            _refusal(name)
        )


def _refusal(name: str) -> Callable[[], None]:
    def unavailable() -> None:
        typer.echo(f"chatwizard {name} is a development command: this installation ships without the local "
                   "estate. Run it from a repository checkout (`make deps`).", err=True)
        raise typer.Exit(2)

    return unavailable


try:
    from chatwizard.estate.commands import register as register_estate
except ModuleNotFoundError as missing:  # the production wheel leaves chatwizard.estate out (setup.py)
    if missing.name != "chatwizard.estate":
        raise
    register_estate = development_only
register_estate(app)


def with_services(work: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        services = await Services.start(get_settings())
        try:
            return await work(services)
        finally:
            await services.stop()

    return asyncio.run(main())


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
    from chatwizard.core.crypto import FieldCipher
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

    outcome = asyncio.run(work())
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
    """Create an API key and print it once (within the tier's bound on active keys)."""
    from chatwizard.accounts import service

    async def work(s: Services) -> str:
        async def find_or_create(conn: asyncpg.Connection) -> UUID:
            user_id = await service.find_user(conn, s.cipher, email)
            return user_id or (await service.create_user(conn, s.cipher, email, tier))["id"]

        user_id = await s.db.write(find_or_create)
        minted = await service.mint_key(s, None, user_id, name, scopes=[], expires_at=None)
        assert minted is not None  # the user was found or created just now
        return minted[0]

    try:
        typer.echo(with_services(work))
    except service.KeyRefused as refused:
        typer.echo(f"error: {refused.detail}", err=True)
        raise typer.Exit(1) from None


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


@app.command()
def invite(
    email: Annotated[str, typer.Argument(help="the learner's e-mail address")],
    tier: Annotated[Literal["free", "pro", "admin"], typer.Option(help="the account's tier")] = "free",
) -> None:
    """Mail an invitation link (the account is made when it is first used): the first admin, operators."""
    from chatwizard.core.mail import MailUnavailable
    from chatwizard.web_sessions import service

    try:
        invitation = with_services(lambda s: service.invite(s, email, tier, None))
    except service.LinkRefused as refused:
        typer.echo(f"error: {refused.detail}", err=True)
        raise typer.Exit(1) from None
    except MailUnavailable as failure:
        typer.echo(f"error: the mail server is unavailable ({failure}); no invitation was made", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"invited {email} ({tier}); the link works until {invitation['expires_at'].isoformat()}")


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
    from chatwizard.core.crypto import FieldKeyError

    configure_logging(get_settings(), stream=sys.stderr)
    try:
        app()
    except FieldKeyError as exc:  # no ring, or a value under a key not in it: say so, write nothing
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
