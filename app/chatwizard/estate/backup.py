"""Backups of the local estate's primary with barman-cloud: continuous WAL archiving and base backups
to S3-compatible storage, encrypted at rest (SSE), with a retention policy; restore to a new node at
the latest point or at a chosen time.

Locally the bucket is a real S3 API server on loopback (moto in server mode). The barman-cloud tools
live in their own virtualenv (`.venv/barman`, made by `make deps` with the system Python), because
Postgres runs them as its own unprivileged user for `archive_command` and `restore_command`.
In production RDS does all of this itself (automated backups, PITR): see infra/ and
runbooks/disaster-recovery.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import boto3

from chatwizard.estate.postgres import SYSTEM_USER, PostgresNode
from chatwizard.estate.processes import stop_process, wait_ready

BARMAN_BIN = Path(sys.executable).parent.parent / "barman" / "bin"
SERVER_NAME = "chatwizard"
# A WAL segment is archived when full or after this long, whichever comes first: the bound on RPO.
ARCHIVE_TIMEOUT_S = 30
RECOVERY_TIMEOUT_S = 600
RETENTION = "REDUNDANCY 3"  # base backups kept; WAL older than the oldest kept one goes with it
STAND_IN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local-stand-in", "AWS_SECRET_ACCESS_KEY": "local-stand-in",
                        "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class BackupStore:
    """Where backups go: an S3 endpoint, bucket and prefix (one folder per server inside it)."""
    endpoint_url: str
    bucket: str
    prefix: str = "postgres"
    primary_port: int = 0  # the node backed up, for `chatwizard backup`

    @property
    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def cloud_args(self) -> list[str]:
        return ["--cloud-provider", "aws-s3", "--endpoint-url", self.endpoint_url]

    def command(self, tool: str, *args: str) -> list[str]:
        """A barman-cloud command line; credentials come from the environment (`env` in Postgres's
        own commands), as an instance role would give them in the cloud."""
        env = [f"{k}={v}" for k, v in STAND_IN_CREDENTIALS.items()]
        return ["env", *env, str(BARMAN_BIN / tool), *self.cloud_args(), *args]

    def run(self, tool: str, *args: str) -> str:
        result = subprocess.run(self.command(tool, *args), user=SYSTEM_USER, capture_output=True, text=True,
                                cwd="/", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def s3(self):  # boto3's client types are generated at run time
        keys = STAND_IN_CREDENTIALS
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=keys["AWS_DEFAULT_REGION"],
                            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self) -> None:
        s3 = self.s3()
        if self.bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=self.bucket)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)) + "\n")

    @classmethod
    def load(cls, path: Path) -> BackupStore:
        return cls(**json.loads(path.read_text()))


def command_line(words: list[str]) -> str:
    return " ".join(words)  # every word is ours: paths, URLs and fixed options without spaces


def enable_archiving(node: PostgresNode, store: BackupStore) -> None:
    """Ship every WAL segment to the bucket as it completes (or after ARCHIVE_TIMEOUT_S), encrypted with
    SSE and compressed; takes effect at the next start (archive_mode needs a restart)."""
    archive = store.command("barman-cloud-wal-archive", "-e", "AES256", "--gzip", store.destination,
                            SERVER_NAME, "%p")
    for name, value in (("archive_mode", "on"), ("archive_timeout", f"{ARCHIVE_TIMEOUT_S}s"),
                        ("archive_command", command_line(archive))):
        node.psql(f"ALTER SYSTEM SET {name} = '{value}'")


def base_backup(node: PostgresNode, store: BackupStore) -> None:
    """A base backup of the running primary, then the retention policy applied."""
    store.run("barman-cloud-backup", "-e", "AES256", "--gzip", "--immediate-checkpoint", "-h", "127.0.0.1",
              "-p", str(node.port), "-U", "postgres", store.destination, SERVER_NAME)
    store.run("barman-cloud-backup-delete", "--retention-policy", RETENTION, store.destination, SERVER_NAME)


def backup_ids(store: BackupStore) -> list[str]:
    listing = json.loads(store.run("barman-cloud-backup-list", "--format", "json", store.destination,
                                   SERVER_NAME))
    return [b["backup_id"] for b in listing["backups_list"]]


def restore(store: BackupStore, node: PostgresNode, target_time: datetime | None = None) -> None:
    """Restore the latest base backup before ``target_time`` (or the latest) into a new node's empty
    data folder and replay archived WAL up to that time (or to the end), then start it as a primary.
    The restored node does not archive: it would mix its new timeline into the old node's folder."""
    node._own()
    backup = ["--target-time", target_time.isoformat()] if target_time else []
    backup_id = "auto" if target_time else "latest"
    store.run("barman-cloud-restore", *backup, store.destination, SERVER_NAME, backup_id, str(node.data_dir))
    fetch = store.command("barman-cloud-wal-restore", store.destination, SERVER_NAME, "%f", "%p")
    settings = {"restore_command": command_line(fetch), "recovery_target_action": "promote",
                "archive_mode": "off", "port": str(node.port),
                "unix_socket_directories": str(node.data_dir)}
    if target_time:
        settings |= {"recovery_target_time": target_time.isoformat(), "recovery_target_inclusive": "false"}
    with (node.data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
    (node.data_dir / "recovery.signal").touch()
    (node.data_dir / "standby.signal").unlink(missing_ok=True)
    node.start()
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:  # replaying archived WAL; promoted at the target or at the end of the archive
        if not node.running:
            raise RuntimeError(f"recovery stopped (the archive may end before {target_time}: nothing was "
                               f"written after it yet): {node.log_file.read_text()[-600:]}")
        if not node.in_recovery:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node.data_dir} still recovering after {RECOVERY_TIMEOUT_S} s (server.log)")
        time.sleep(0.2)


class S3StandIn:
    """moto in server mode on loopback: the S3 API for real clients (boto3, barman-cloud), in memory."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_file: Path) -> None:
        moto = str(Path(sys.executable).with_name("moto_server"))
        with log_file.open("ab") as log:
            self.process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(f"{self.url}/moto-api/data.json", self.process, timeout_s=60)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class BackupSchedule(threading.Thread):
    """Base backups every ``interval_s`` (the first at once) while the estate runs."""

    def __init__(self, node: PostgresNode, store: BackupStore, interval_s: float) -> None:
        super().__init__(daemon=True, name="base-backups")
        self.node, self.store, self.interval_s = node, store, interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                base_backup(self.node, self.store)
            except RuntimeError as exc:  # reported, retried at the next interval
                print(f"base backup failed: {exc}", file=sys.stderr, flush=True)
            self.stopping.wait(self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
