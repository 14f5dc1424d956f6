"""Running k6 scripts against the perf estate and reading their summaries."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

K6 = Path(sys.executable).parent / "k6"
SCRIPTS = Path(__file__).resolve().parents[1] / "k6"
TREND_STATS = "avg,med,p(90),p(95),p(99),max"


def raise_file_limit() -> int:
    """10,000 VUs hold ~10,000 sockets each side of loopback: lift the soft limit to the hard one."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run(script: str, out: Path, env: dict[str, str], console: Path) -> dict:
    """Run loadtest/k6/<script>.js; returns k6's summary (metrics with their trend stats)."""
    summary = out / f"{script}-summary.json"
    command = [
        str(K6),
        "run",
        "--quiet",
        "--no-color",
        f"--summary-export={summary}",
        f"--summary-trend-stats={TREND_STATS}",
        str(SCRIPTS / f"{script}.js"),
    ]
    with console.open("ab") as log:
        result = subprocess.run(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    if not summary.exists():
        raise RuntimeError(f"k6 {script} produced no summary (exit {result.returncode}); see {console}")
    return {"exit_code": result.returncode, **json.loads(summary.read_text())}
