"""The lab hosts' outside world, served from this side of the lab bridge (the lab's gateway address).

The managed Postgres (a PostgreSQL 18 + pgvector server with TLS and password logins, as RDS
serves), S3 (moto in server mode), the log endpoint (a TCP syslog receiver), the mail relay (the
estate's SMTP sink requiring STARTTLS, as SES does), a certificate authority for the lab, and stand-ins for the two vendor archives that cannot be downloaded here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chatwizard.estate.mail import MailSink
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import SYSTEM_USER, PostgresNode

DB_NAME = "db.lab"  # the managed database's host name, in every lab host's /etc/hosts
MAIL_NAME = "mail.lab"  # the mail relay's, likewise


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass
class CA:
    """A throwaway certificate authority: it signs the edge's and the database's certificates."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    name: x509.Name = field(default_factory=lambda: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab CA")]))

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, dns: list[str], ips: list[str] = ()) -> tuple[str, str]:
        """A server certificate (PEM) and its key (PEM) for these names and addresses."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)


@dataclass
class ManagedPostgres:
    """Postgres on loopback behind a TLS front door on the lab's gateway (a certificate for db.lab,
    password logins), like a managed database's endpoint. The pgserver build has no SSL, so the front
    door is PgBouncer in session mode; the superuser `postgres` plays the provider's master user."""

    node: PostgresNode
    bouncer: subprocess.Popen

    def stop(self) -> None:
        self.bouncer.terminate()
        self.bouncer.wait(timeout=10)
        self.node.stop()


def managed_postgres(state: Path, gateway: str, port: int, ca: CA, logins: dict[str, str]) -> ManagedPostgres:
    node = PostgresNode(state / "managed-postgres", free_port())
    node.init_primary()
    node.start()
    node.create_database()
    front = state / "managed-front"
    front.mkdir()
    cert, key = ca.issue([DB_NAME])
    users = "".join(f'"{name}" "{password}"\n' for name, password in logins.items())
    files = {"server.pem": cert, "server.key": key, "userlist.txt": users, "pgbouncer.ini": f"""
[databases]
* = host=127.0.0.1 port={node.port}
[pgbouncer]
listen_addr = {gateway}
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {front}/userlist.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 50
ignore_startup_parameters = extra_float_digits
client_tls_sslmode = require
client_tls_cert_file = {front}/server.pem
client_tls_key_file = {front}/server.key
"""}
    for name, text in files.items():
        (front / name).write_text(text)
        (front / name).chmod(0o600)
    if SYSTEM_USER:
        for path in (front, *front.iterdir()):
            shutil.chown(path, SYSTEM_USER, SYSTEM_USER)
    log = (state / "managed-front.log").open("w")
    bouncer = subprocess.Popen(["pgbouncer", *(["-u", SYSTEM_USER] if SYSTEM_USER else []), str(front / "pgbouncer.ini")],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while socket.socket().connect_ex((gateway, port)) != 0:
        if bouncer.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"the database's front door did not start: {(state / 'managed-front.log').read_text()}")
        time.sleep(0.1)
    return ManagedPostgres(node, bouncer)


class LogCollector(socketserver.ThreadingTCPServer):
    """The log endpoint: keeps every line the hosts' rsyslog sends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        super().__init__(address, _LogHandler)

    def add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def wait_for(self, needle: str, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = [line for line in self.lines if needle in line]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no shipped log line contains {needle!r} ({len(self.lines)} lines arrived)")


class _LogHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            self.server.add(raw.decode(errors="replace").rstrip("\n"))


@contextmanager
def log_collector(host: str, port: int) -> Iterator[LogCollector]:
    server = LogCollector((host, port))
    thread = threading.Thread(target=server.serve_forever, name="log-collector", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def s3_server(host: str, port: int, log: Path) -> Iterator[str]:
    """moto's S3 in server mode on host:port; yields its endpoint URL."""
    moto = Path(sys.executable).with_name("moto_server")
    with log.open("w") as out:
        proc = subprocess.Popen([str(moto), "-H", host, "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex((host, port)) != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"http://{host}:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def vendor_archives(out: Path) -> tuple[Path, Path, Path]:
    """Stand-ins for the Pulumi CLI and runner agent release archives and the Argo Rollouts kubectl
    plugin, laid out like the real ones (pulumi/pulumi; config.sh + run.sh at the top; one binary).
    The real ones come from their vendors' download sites, which this machine cannot reach: these
    check the role's fetch-unpack-register-run path and kubectl's plugin lookup, not the vendors'
    programs. The agent's config.sh records the URL and labels it registers with in .runner."""
    pulumi = {"pulumi/pulumi": '#!/bin/sh\necho "v3.210.0 (lab stand-in)"\n'}
    agent = {
        "config.sh": '#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in --url) url=$2; shift;;'
                     ' --labels) labels=$2; shift;; esac; shift; done\n'
                     'printf \'{"gitHubUrl": "%s", "labels": "%s"}\\n\' "$url" "$labels" > .runner\n',
        "run.sh": '#!/bin/sh\n# Listens for jobs like the real agent (here: waits).\nexec sleep infinity\n',
    }
    plugin = out / "kubectl-argo-rollouts"
    plugin.write_text('#!/bin/sh\necho "kubectl-argo-rollouts: v1.9.0+lab (stand-in) $*"\n')
    plugin.chmod(0o755)
    return (_tar(out / "pulumi-v3.210.0-linux-x64.tar.gz", pulumi),
            _tar(out / "actions-runner-linux-x64-2.330.0.tar.gz", agent), plugin)


def _tar(path: Path, files: dict[str, str]) -> Path:
    staging = path.with_suffix(".d")
    for name, text in files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755)
    with tarfile.open(path, "w:gz") as tar:
        for name in files:
            tar.add(staging / name, arcname=name)
    return path


@contextmanager
def mail_relay(state: Path, host: str, port: int, ca: CA) -> Iterator[MailSink]:
    """An SMTP relay that refuses mail before STARTTLS, with a certificate for MAIL_NAME from the lab CA."""
    cert, key = ca.issue([MAIL_NAME])
    state.mkdir(parents=True, exist_ok=True)
    (state / "relay.pem").write_text(cert + key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(state / "relay.pem")
    relay = MailSink(state / "mailbox", port, host=host, tls_context=context)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()
