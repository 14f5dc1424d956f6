"""The real Pulumi program, run once per stack under the mock runtime (tests/infra/mock_stack.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


@dataclass
class Stack:
    name: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [r for r in self.of_type(kind) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {[r['name'] for r in found]}"
        return found[0]

    def inputs(self, kind: str, name: str | None = None) -> dict[str, Any]:
        return self.one(kind, name)["inputs"]


def run_stack(stack: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.infra.mock_stack", stack, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@cache
def declared(name: str, *extra: str) -> Stack:
    result = run_stack(name, *extra)
    assert result.returncode == 0, result.stderr
    recorded = json.loads(result.stdout)
    return Stack(name, recorded["resources"], recorded["outputs"])


@pytest.fixture(params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> Stack:
    return declared(request.param)


@pytest.fixture
def production() -> Stack:
    return declared("production")
