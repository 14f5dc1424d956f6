"""The k6 learner journey, a few hundred users for about a minute, against the running app: the
scenario keeps working and its thresholds (p95 < 3 s, < 1 % failures, > 99 % checks) hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import AppServer

K6 = str(Path(sys.executable).with_name("k6"))
SCENARIO = Path(__file__).parents[2] / "loadtest" / "k6" / "smoke.js"


async def test_smoke_load_passes_its_thresholds(app_server: AppServer, make_user, tmp_path: Path):
    admin = await make_user("admin")
    summary = tmp_path / "summary.json"
    env = {**os.environ, "BASE_URL": app_server.base_url, "ADMIN_KEY": admin.key, "USERS": "200",
           "THINK_SCALE": "0.1", "RAMP": "10s", "HOLD": "35s", "K6_NO_USAGE_REPORT": "true"}
    result = subprocess.run([K6, "run", "--quiet", "--summary-export", str(summary), str(SCENARIO)],
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(summary.read_text())["metrics"]
    crossed = {name: t for name, m in metrics.items() for t, failed in m.get("thresholds", {}).items() if failed}
    assert crossed == {}
    assert metrics["iterations"]["count"] > 200, "too few learner visits to mean anything"
    assert metrics["http_req_failed"]["value"] < 0.01 and metrics["checks"]["fails"] == 0
    assert metrics["chat_cache_hit"]["value"] > 0.5  # popular questions repeat (Zipf)
