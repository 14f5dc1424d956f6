"""Run the fake LLM inside a test: a real uvicorn server on a free loopback port, in a thread.

    with running_fake_llm(FakeLLMConfig(latency_mode="none")) as llm:
        client = openai.OpenAI(base_url=llm.base_url, api_key=llm.api_key)
        llm.configure(error_rate_500=1.0)   # the same POST /admin/config a fault test would send
        assert llm.stats()["requests"]["chat_completions"] == 1
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from fakellm.config import FakeLLMConfig
from fakellm.server import FakeLLM, server_config

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 5.0
API_KEY = "fake-key"  # any non-empty key is accepted


@dataclass(frozen=True)
class RunningFakeLLM:
    root_url: str  # http://127.0.0.1:<port>, where /healthz, /stats and /admin live
    api_key: str = API_KEY

    @property
    def base_url(self) -> str:
        """What the openai client (or OPENAI_BASE_URL) takes."""
        return self.root_url + "/v1"

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change latency or error rates of the running server; returns the whole new config."""
        return self._post("/admin/config", changes)

    def reset_stats(self) -> dict[str, Any]:
        return self._post("/admin/reset-stats", {})

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.root_url + "/stats", trust_env=False)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(self.root_url + path, json=payload, trust_env=False)
        response.raise_for_status()
        return response.json()


def bound_socket(host: str = LOOPBACK) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake LLM server did not start")
        time.sleep(0.005)


@contextmanager
def running_fake_llm(config: FakeLLMConfig | None = None, host: str = LOOPBACK) -> Iterator[RunningFakeLLM]:
    """Serve ``config`` (default: the realistic latency model) until the block ends; ``host`` is the
    address to listen on (another than loopback for test hosts in network namespaces)."""
    sock = bound_socket(host)
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(FakeLLM(config), host, port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fakellm", daemon=True)
    thread.start()
    try:
        wait_started(server, thread)
        yield RunningFakeLLM(f"http://{host}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S + 5)
        sock.close()
