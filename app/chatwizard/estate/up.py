"""``chatwizard up``: the whole estate on one laptop, on embedded defaults, stopped by Ctrl-C.

Postgres primary + streaming replica and Redis come from wheels; migrations and the sample
catalogue are applied on first start; the app runs under gunicorn; nginx (the edge cache's stand-in),
Prometheus, Alertmanager, the exporters and the log shipper (syslog-ng, into a PostgreSQL log store) join
from Debian packages.
Data stays in the state folder between runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chatwizard.core.crypto import new_key_entry
from chatwizard.core.settings import APP_DB_LOGIN
from chatwizard.estate.backup import BackupSchedule, BackupStore, S3StandIn, enable_archiving
from chatwizard.estate.edge import EdgeCache
from chatwizard.estate.logs import REQUEST_QUERY, LogStore, start_log_shipping
from chatwizard.estate.mail import MailSink
from chatwizard.estate.monitoring import Targets, start_monitoring
from chatwizard.estate.ports import EstatePorts
from chatwizard.estate.postgres import PostgresNode
from chatwizard.estate.processes import stop_process, wait_ready

DEMO_EMAIL = "demo@example.com"
BACKUP_INTERVAL_H = 24


def field_keys(state_dir: Path) -> str:
    """This laptop's field-encryption key ring, made once and kept (mode 0600) beside the data it opens."""
    ring_file = state_dir / "field-keys"
    if not ring_file.exists():
        ring_file.touch(mode=0o600)
        ring_file.write_text(new_key_entry("v1") + "\n")
    return ring_file.read_text().strip()


def app_environment(ports: EstatePorts, primary_dsn: str, replica_dsn: str, redis_url: str,
                    state_dir: Path) -> dict[str, str]:
    return {
        "CHATWIZARD_FIELD_KEYS": field_keys(state_dir),
        **os.environ,
        "CHATWIZARD_PORT": str(ports.app),
        "CHATWIZARD_METRICS_PORT": str(ports.metrics),
        "CHATWIZARD_DATABASE_URL": primary_dsn,
        "CHATWIZARD_REPLICA_URL": replica_dsn,
        "CHATWIZARD_REDIS_URL": redis_url,
        "CHATWIZARD_METRICS_MULTIPROC_DIR": str(state_dir / "metrics"),
        "CHATWIZARD_PUBLIC_URL": f"http://127.0.0.1:{ports.app}",
        "CHATWIZARD_SMTP_HOST": "127.0.0.1",
        "CHATWIZARD_SMTP_PORT": str(ports.smtp),
        # No proxy in front of the laptop's app: a client's X-Forwarded-For is never believed.
        "CHATWIZARD_FORWARDED_ALLOW_IPS": "",
    }


def start_backups(state_dir: Path, primary: PostgresNode, s3_port: int,
                  stops: list[tuple[str, object]]) -> tuple[BackupStore, BackupSchedule]:
    """The S3 API stand-in with the backup bucket, and the primary archiving its WAL into it. The
    stand-in keeps the bucket in memory, so each start begins with a fresh base backup."""
    s3 = S3StandIn(s3_port)
    s3.start(state_dir / "s3.log")
    stops.insert(0, ("s3 stand-in", s3.stop))
    store = BackupStore(s3.url, "chatwizard-backups", primary_port=primary.port)
    store.create_bucket()
    store.save(state_dir / "backup.json")
    archiving = primary.psql("SHOW archive_mode") == "on"
    enable_archiving(primary, store)
    if archiving:
        primary.psql("SELECT pg_reload_conf()")  # the stand-in's port may have changed
    else:  # archive_mode takes effect at a restart; the replica reconnects by itself
        primary.stop()
        primary.start()
    schedule = BackupSchedule(primary, store, BACKUP_INTERVAL_H * 3600)
    stops.insert(0, ("base backups", schedule.stop))
    return store, schedule


def write_env(state_dir: Path, app: str, primary_dsn: str, replica_dsn: str, prometheus: str,
              alertmanager: str, **more: str) -> None:
    """The estate's addresses as shell variables (state_dir/estate.env): the runbooks' local commands use
    them after `source .estate/estate.env`."""
    names = {"CHATWIZARD_STATE_DIR": str(state_dir), "CW": app, "CW_PRIMARY": primary_dsn,
             "CW_REPLICA": replica_dsn, "CW_PROMETHEUS": prometheus, "CW_ALERTMANAGER": alertmanager, **more}
    (state_dir / "estate.env").write_text("".join(f"export {k}='{v}'\n" for k, v in names.items()))


def start_app(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    chatwizard = str(Path(sys.executable).with_name("chatwizard"))
    with log_file.open("ab") as log:
        return subprocess.Popen([chatwizard, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def demo_key(env: dict[str, str], state_dir: Path) -> str:
    """The demo user's key, created once and kept (mode 0600) in the state folder for this laptop."""
    key_file = state_dir / "demo-api-key"
    if key_file.exists():
        return key_file.read_text().strip()
    chatwizard = str(Path(sys.executable).with_name("chatwizard"))
    key = subprocess.run([chatwizard, "keys", "create", "--email", DEMO_EMAIL, "--tier", "pro",
                          "--name", "local estate demo"], env=env, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    key_file.touch(mode=0o600)
    key_file.write_text(key + "\n")
    return key


def prepare_database(env: dict[str, str]) -> None:
    chatwizard = str(Path(sys.executable).with_name("chatwizard"))
    subprocess.run([chatwizard, "migrate"], env=env, check=True)
    subprocess.run([chatwizard, "seed"], env=env, check=True)


@contextlib.contextmanager
def stopping_on_exit() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so `kill` and Ctrl-C both stop the estate cleanly. Ctrl-C gets
    Python's handler back too: a shell starts background jobs (`chatwizard up &`, a script's `... &`) with
    SIGINT ignored, and Python then leaves it ignored, so the estate would never hear it."""
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def run_estate(state_dir: Path, ports: EstatePorts | None = None) -> None:
    from chatwizard.estate.postgres import failover_dsn, start_pair
    from chatwizard.estate.redis import RedisNode, password_file

    ports = ports or EstatePorts()
    state_dir.mkdir(parents=True, exist_ok=True)
    stops: list[tuple[str, object]] = []
    with stopping_on_exit():
        try:
            print(f"state folder: {state_dir}")
            primary, replica = start_pair(state_dir, ports.primary, ports.replica)
            stops += [("postgres replica", replica.stop), ("postgres primary", primary.stop)]
            store, schedule = start_backups(state_dir, primary, ports.s3, stops)
            redis = RedisNode(state_dir / "redis", ports.redis, password=password_file(state_dir))
            redis.start()
            stops.insert(0, ("redis", redis.stop))
            mail = MailSink(state_dir / "mail", ports.smtp)
            mail.start()
            stops.insert(0, ("mail sink", mail.stop))
            # Migrations run as the owner and (re)set the app's login; the app runs as that login, with
            # only the chatwizard_app role's grants, as in production. Trust auth here: any password.
            password = secrets.token_urlsafe(24)
            owner = app_environment(ports, primary.dsn, replica.dsn, redis.url, state_dir)
            prepare_database(owner | {"CHATWIZARD_APP_DB_PASSWORD": password})
            env = app_environment(ports, failover_dsn(primary, replica, APP_DB_LOGIN, password),
                                  replica.dsn_as(APP_DB_LOGIN, password), redis.url, state_dir)
            key = demo_key(env, state_dir)
            logs, shipping = start_log_shipping(state_dir / "logs", state_dir / "app.log", ports.log_store)
            stops[:0] = shipping
            app = start_app(env, state_dir / "app.log")
            stops.insert(0, ("app", lambda: stop_process(app)))
            base = f"http://127.0.0.1:{ports.app}"
            wait_ready(f"{base}/readyz", app)
            edge = EdgeCache(state_dir / "edge", ports.edge, f"127.0.0.1:{ports.app}")
            edge.start()
            stops.insert(0, ("edge cache (nginx)", edge.stop))
            targets = Targets(f"127.0.0.1:{ports.metrics}", base, primary.dsn, f"127.0.0.1:{ports.redis}",
                              key, webhook_url=None, redis_password=redis.password)
            stops[:0] = start_monitoring(state_dir / "monitoring", ports, targets)
            write_env(state_dir, base, primary.dsn, replica.dsn, f"http://127.0.0.1:{ports.prometheus}",
                      f"http://127.0.0.1:{ports.alertmanager}")
            print_summary(base, edge.url, ports, key, primary.dsn, replica.dsn, state_dir, logs, store, mail)
            schedule.start()
            while app.poll() is None:
                time.sleep(1)
            print(f"the app exited with code {app.returncode}; see {state_dir / 'app.log'}")
        except KeyboardInterrupt:
            say("\nstopping the estate ...")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan servers
            for name, stop in stops:
                stop()  # type: ignore[operator]
                say(f"  stopped {name}")


def say(line: str) -> None:
    """Print, unless whoever read the output has gone (a closed pipe): the servers must stop regardless."""
    with contextlib.suppress(OSError):
        print(line, flush=True)


def print_summary(base: str, edge: str, ports: EstatePorts, key: str, primary_dsn: str, replica_dsn: str,
                  state_dir: Path, logs: LogStore, backups: BackupStore, mail: MailSink) -> None:
    one_request = REQUEST_QUERY.replace("$1", "'<X-Request-Id>'")
    lines = [
        "",
        "Chat Wizard is up (sample catalogue: generated data, not real YouTube videos).",
        f"  App            {base}",
        f"  API docs       {base}/docs",
        f"  Edge           {edge}  (nginx in front of the app, caching /static/ as Cloudflare does: "
        "X-Cache-Status)",
        f"  Readiness      {base}/readyz",
        f"  Metrics        http://127.0.0.1:{ports.metrics}/metrics",
        f"  Demo API key   {key}",
        f"  Postgres       {primary_dsn}  (primary, as the owner)",
        f"                 {replica_dsn}  (read replica)",
        f"                 the app logs in as {APP_DB_LOGIN}, with only the chatwizard_app role's grants",
        f"  Mail           smtp://{mail.host}:{mail.port}, each message kept in {mail.folder} (one .eml)",
        f"  Redis          redis://127.0.0.1:{ports.redis}/0  (password in {state_dir}/redis-password)",
        f"  Prometheus     http://127.0.0.1:{ports.prometheus}  (alerts: /alerts)",
        f"  Alertmanager   http://127.0.0.1:{ports.alertmanager}",
        f"  Shell          source {state_dir}/estate.env  (CW, CW_PRIMARY ...: the runbooks' local commands)",
        f"  Backups        WAL archived continuously, base backups every {BACKUP_INTERVAL_H} h to "
        f"{backups.destination} at {backups.endpoint_url}",
        f"  Logs           {state_dir}/app.log, shipped by syslog-ng to the log store {logs.dsn}",
        f"                 one request, every worker: {logs.psql} -c \"{one_request}\"",
        "",
        "Ask a question:",
        f"  curl -s {base}/v1/chat -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        "       -d '{\"question\": \"How do I script a door that opens in Roblox?\"}'",
        "",
        "Press Ctrl-C to stop everything (data stays in the state folder).",
    ]
    print("\n".join(lines), flush=True)
