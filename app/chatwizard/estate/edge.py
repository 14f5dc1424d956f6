"""The edge locally: Debian's nginx as a caching reverse proxy in front of the app, standing in for
Cloudflare (infra/components/edge.py) with the same rule: only `/static/` may be stored, and only for as
long as the origin's Cache-Control says; pages, the API and the calendar feeds pass through. Every answer
carries `X-Cache-Status` (HIT, MISS, EXPIRED ... from nginx; BYPASS where nothing may be stored)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chatwizard.core.edge import STATIC_PREFIX
from chatwizard.estate.processes import stop_process

# Debian puts nginx in /usr/sbin, which an unprivileged user's PATH often lacks.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

CONFIG = """\
# Rendered by chatwizard.estate.edge: edit that module, not this file.
user {user};
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 1024; }}

http {{
    access_log {state}/access.log;
    server_tokens off;
    {temp_paths}
    proxy_cache_path {state}/cache levels=1:2 keys_zone=edge:10m max_size=1g inactive=30d use_temp_path=off;

    # Browsers spell Accept-Encoding many ways: one cache entry per encoding the origin has, not per spelling.
    map $http_accept_encoding $edge_encoding {{
        default "";
        ~*\\bbr\\b br;
        ~*\\bgzip\\b gzip;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" "";
    }}

    upstream origin {{
        server {origin};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_buffering on;

        # Fingerprinted assets: stored for as long as the origin's Cache-Control says (nothing is stored
        # without one), a variant per encoding. The origin varies on Accept-Encoding only, and the key
        # carries the normalised encoding, so nginx's own Vary handling (per raw header spelling) would
        # only split the same variant: the key does its job. Clients still get the origin's Vary.
        location {static} {{
            proxy_pass http://origin;
            proxy_set_header Accept-Encoding $edge_encoding;
            proxy_cache edge;
            proxy_cache_key $scheme$host$request_uri$edge_encoding;
            proxy_ignore_headers Vary;
            proxy_cache_lock on;
            proxy_cache_revalidate on;
            proxy_cache_use_stale error timeout updating;
            add_header X-Cache-Status $upstream_cache_status always;
        }}

        # Pages, the API (including its SSE stream and WebSocket) and the calendar feeds: never stored.
        location / {{
            proxy_pass http://origin;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            add_header X-Cache-Status BYPASS always;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=SEARCH_PATH)


def render_config(state: Path, port: int, origin: str) -> str:
    """nginx's configuration: listening on loopback `port`, in front of `origin` (host:port)."""
    temp_paths = "\n    ".join(f"{name}_temp_path {state}/temp/{name};" for name in
                               TEMP_DIRS)
    return CONFIG.format(user=getpass.getuser(), state=state, temp_paths=temp_paths, origin=origin,
                         port=port, static=STATIC_PREFIX)


@dataclass
class EdgeCache:
    """nginx caching in front of `origin`; `start()` returns once it listens on `port`."""

    state: Path
    port: int
    origin: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (`make deps` installs the Debian package)")
        for name in TEMP_DIRS:
            (self.state / "temp" / name).mkdir(parents=True, exist_ok=True)
        config = self.state / "nginx.conf"
        config.write_text(render_config(self.state, self.port, self.origin))
        # -e: errors before the config is read go to the state folder too, not /var/log/nginx.
        args = [binary, "-p", str(self.state), "-c", str(config), "-e", str(self.state / "error.log")]
        subprocess.run([*args, "-t", "-q"], check=True, capture_output=True)
        self.process = subprocess.Popen([*args, "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        wait_listening(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=10)  # SIGTERM: nginx's fast shutdown


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """Wait until something accepts on loopback `port`; fail early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with code {process.returncode}; see its error.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx not listening on {port} after {timeout_s:.0f} s")
