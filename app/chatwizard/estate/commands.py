"""The local estate's commands (`chatwizard up`, `security-audit`, `promote`, `start-redis`, `backup`,
`restore`, `drill`, `gameday`), registered on the CLI only where the estate is installed: the production
wheel leaves this package out (setup.py)."""

from __future__ import annotations

import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chatwizard.estate.ports import EstatePorts

if TYPE_CHECKING:
    from chatwizard.estate.backup import BackupStore

StateDir = Annotated[Path, typer.Option(envvar="CHATWIZARD_STATE_DIR", help="the local estate's state")]


def register(app: typer.Typer) -> None:
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
        log_store_port: int = EstatePorts.log_store,
        smtp_port: int = EstatePorts.smtp,
        s3_port: int = EstatePorts.s3,
        edge_port: int = EstatePorts.edge,
    ) -> None:
        """Start the whole local estate (Postgres primary + replica, Redis, app, the edge cache, monitoring,
        log store, backup bucket); Ctrl-C stops it."""
        from chatwizard.estate.up import run_estate

        run_estate(state_dir.resolve(), EstatePorts(  # by name: a field added in between cannot shift them
            app=app_port, metrics=metrics_port, primary=postgres_port, replica=replica_port, redis=redis_port,
            prometheus=prometheus_port, alertmanager=alertmanager_port,
            postgres_exporter=postgres_exporter_port, redis_exporter=redis_exporter_port,
            blackbox_exporter=blackbox_exporter_port, log_store=log_store_port, smtp=smtp_port, s3=s3_port,
            edge=edge_port))


    @app.command("security-audit")
    def security_audit(
        key: Annotated[str, typer.Option(envvar="CHATWIZARD_AUDIT_KEY", help="an API key of the estate")],
        base_url: Annotated[str, typer.Option(help="the running estate (loopback only)")] =
        f"http://127.0.0.1:{EstatePorts.app}",
        out: Annotated[Path, typer.Option(help="where to write the findings")]
        = Path("docs/security/audit.md"),
    ) -> None:
        """Bandit, live security headers and bounded sqlmap runs against a running estate; findings to a
        file."""
        from chatwizard.estate.security_audit import run_audit

        clean = run_audit(base_url.rstrip("/"), key, out)
        typer.echo(f"wrote {out}: {'nothing to fix' if clean else 'FINDINGS to fix'}")
        if not clean:
            raise typer.Exit(1)

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

    @app.command("start-redis")
    def start_redis(state_dir: StateDir = Path(".estate")) -> None:
        """Start the local estate's Redis again (after it died), from the configuration it last ran with."""
        from chatwizard.estate.redis import start_again

        port = start_again(state_dir.resolve() / "redis")
        typer.echo(f"Redis answers on 127.0.0.1:{port}; the app uses it again within "
                   "CHATWIZARD_REDIS_RETRY_INTERVAL_S (5 s)")

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
            help="restore to this time, with its zone, e.g. 2026-12-02T12:00:00+00:00 (default: latest)")]
        = None,
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
        state_dir: Annotated[Path, typer.Option(help="throwaway estates, emptied first")]
        = Path(".estate-drill"),
        backup_load_s: Annotated[float, typer.Option(help="writes before the loss (> archive timeout)")] = 45,
    ) -> None:
        """Run every disaster-recovery drill on throwaway estates and write the report with its figures."""
        from chatwizard.estate.drills import run_all

        shutil.rmtree(state_dir, ignore_errors=True)
        report = run_all(state_dir.resolve(), backup_load_s)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        typer.echo(report)

    @app.command()
    def gameday(
        fault: Annotated[str | None, typer.Option(help="replica-hang, redis-down, llm-errors, slow-primary, "
                                                       "error-burst (default: one at random)")] = None,
        seed: Annotated[int | None, typer.Option(help="draws the same fault again")] = None,
        out: Annotated[Path, typer.Option(help="the report, appended")]
        = Path("docs/reliability/gamedays.md"),
        state_dir: Annotated[Path, typer.Option(help="the throwaway estate, emptied first")]
        = Path(".estate-gameday"),
    ) -> None:
        """Inject a fault into a throwaway estate under traffic; you follow the page to its runbook and fix
        it. Reports detection, time to the right runbook and recovery (answers are read from stdin)."""
        from chatwizard.estate.gameday import FAULTS, append_report, run_gameday
        from chatwizard.estate.up import stopping_on_exit

        if fault is not None and fault not in FAULTS:
            raise typer.BadParameter(f"one of {', '.join(FAULTS)}", param_hint="--fault")
        shutil.rmtree(state_dir, ignore_errors=True)
        with stopping_on_exit():  # `kill` too stops the estate's servers
            result = run_gameday(state_dir.resolve(), fault, seed, typer.echo, ask)
        typer.echo(append_report(result, out))


def ask(question: str) -> str:
    """One line from stdin (the on-call person or a script); empty at its end."""
    typer.echo(question)
    return sys.stdin.readline()


def backup_store(state_dir: Path) -> BackupStore:
    """Where `chatwizard up` said its backups go, or a clear exit when it never ran there."""
    from chatwizard.estate.backup import BackupStore

    config = state_dir.resolve() / "backup.json"
    if not config.exists():
        typer.echo(f"no backups in {state_dir}: `chatwizard up --state-dir {state_dir}` archives there",
                   err=True)
        raise typer.Exit(1)
    return BackupStore.load(config)
