"""The local estate's commands (`chatwizard up`, `chatwizard security-audit`), registered on the CLI only
where the estate is installed: the production wheel leaves this package out (setup.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chatwizard.estate.ports import EstatePorts


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
    ) -> None:
        """Start the whole local estate (Postgres primary + replica, Redis, app, monitoring, log store); Ctrl-C
        stops it."""
        from chatwizard.estate.up import run_estate

        run_estate(state_dir.resolve(), EstatePorts(
            app_port, metrics_port, postgres_port, replica_port, redis_port, prometheus_port,
            alertmanager_port, postgres_exporter_port, redis_exporter_port, blackbox_exporter_port,
            log_store_port))


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
