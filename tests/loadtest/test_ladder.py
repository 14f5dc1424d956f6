"""The ratio ladder's k6 script, in short phases against the test app: every phase runs, each request
lands where the phase says (exact hit, semantic hit, miss), so `make loadtest` never meets a rotten
ladder."""

from __future__ import annotations

import json
from pathlib import Path

from loadrun import k6
from loadrun.__main__ import warm_up
from tests.conftest import AppServer


async def test_every_ladder_phase_runs_and_hits_what_it_should(app_server: AppServer, make_user, tmp_path: Path):
    keys = [(await make_user("pro")).key for _ in range(4)]
    warm_up(app_server, keys)  # type: ignore[arg-type]  # it needs only base_url
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    env = {"BASE_URL": app_server.base_url, "KEYS_FILE": str(tmp_path / "keys.json"), "LADDER_VUS": "4",
           "LADDER_PHASE_S": "3", "K6_NO_USAGE_REPORT": "true"}
    summary = k6.run("ladder", tmp_path, env, tmp_path / "console.log")
    assert summary["exit_code"] == 0, (tmp_path / "console.log").read_text()[-3000:]
    metrics, checks = summary["metrics"], summary["root_group"]["checks"]
    for phase in ("miss", "bare", "cached", "semantic"):
        assert metrics[f"http_reqs{{phase:{phase}}}"]["count"] > 0, phase
        assert checks[f"{phase} 200"]["fails"] == 0, phase
    assert checks["cached cache hit"]["fails"] == 0
    # Rarely a paraphrase misses, or two generated "unique" questions come out close enough to hit.
    for check in ("semantic cache hit", "miss cache miss"):
        assert checks[check]["passes"] >= 0.9 * (checks[check]["passes"] + checks[check]["fails"]), check
