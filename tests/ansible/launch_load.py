"""The launch profile carries the seed's 1,000 active users with the seed's targets: k6's load scenario
(loadtest/k6/load.js, the learner's own pauses) through the launch VM's TLS edge, split across the two
load generators with execution segments and merged into one summary.

Not part of the default suite (its name does not start with test_: minutes of load on top of the lab);
`make launch-loadtest` runs it and keeps the merged summary in loadtest/reports/ (LAUNCH_REPORT).
Figures: docs/launch-profile.md."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from loadrun import segments
from tests.ansible.conftest import K6_WORK, AnsibleLab, fetch, k6

pytestmark = pytest.mark.timeout(3600)
USERS = int(os.environ.get("LAUNCH_USERS", "1000"))
RAMP = os.environ.get("LAUNCH_RAMP", "2m")
HOLD = os.environ.get("LAUNCH_HOLD", "5m")
LOADGENS = ["loadgen-1", "loadgen-2"]
TARGET_MS = 3000  # the seed's p95


def learner_keys(lab: AnsibleLab, admin: str, count: int) -> list[str]:
    """One pro-tier user and key per virtual user, made through the admin API as learner.js does."""
    context = httpx.create_ssl_context(verify=False)
    context.load_verify_locations(cadata=lab.ca.pem)
    headers = {"Authorization": f"Bearer {admin}"}
    base = f"https://{lab.address('launch-1')}/v1/admin/users"
    stamp = datetime.now(UTC).strftime("%H%M%S")
    with httpx.Client(verify=context, headers=headers, trust_env=False, timeout=30) as client:
        def make(i: int) -> str:
            user = client.post(base, json={"email": f"launch-{stamp}-{i}@example.com", "tier": "pro"})
            user.raise_for_status()
            key = client.post(f"{base}/{user.json()['id']}/keys", json={"name": "k6"})
            key.raise_for_status()
            return key.json()["key"]

        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(make, range(count)))


def report(merged: dict, parts: int) -> dict:
    m = merged["metrics"]
    measured = {
        "users": USERS, "ramp": RAMP, "hold": HOLD, "load_generators": parts,
        "requests": m["http_reqs"]["count"], "requests_per_s": round(m["http_reqs"]["rate"], 1),
        "iterations": m["iterations"]["count"], "peak_vus": m["vus_max"]["value"],
        "overall_p95_ms": m["http_req_duration"]["p(95)"], "chat_p95_ms": m["chat_duration"]["p(95)"],
        "failure_rate": m["http_req_failed"]["value"], "checks_rate": m["checks"]["value"],
    }
    targets = {
        "chat p95 < 3 s": measured["chat_p95_ms"] < TARGET_MS,
        "overall p95 < 3 s": measured["overall_p95_ms"] < TARGET_MS,
        "failures < 1 %": measured["failure_rate"] < 0.01,
        "checks > 99 %": measured["checks_rate"] > 0.99,
    }
    return {"scenario": "load", "profile": "launch", "measured": measured, "targets": targets, "k6": merged}


def test_the_launch_vm_carries_the_seeds_thousand_active_users(ansible_lab: AnsibleLab, traffic: dict[str, str],
                                                                tmp_path: Path):
    keys = learner_keys(ansible_lab, traffic["ADMIN_KEY"], USERS)
    hosts = [ansible_lab.host(name) for name in LOADGENS]
    for i, host in enumerate(hosts):  # each part its own users: k6 numbers VUs from 1 in every part
        host.nsenter("tee", f"{K6_WORK}/keys.json", input=json.dumps(keys[i::len(hosts)]))
    env = {**traffic, "USERS": str(USERS), "RAMP": RAMP, "HOLD": HOLD, "THINK_SCALE": "1",
           "KEYS_FILE": f"{K6_WORK}/keys.json"}
    sequence, parts = segments.plan(len(hosts))
    with ThreadPoolExecutor(len(hosts)) as pool:
        runs = list(pool.map(lambda i: k6(hosts[i], env, *segments.k6_args(
            parts[i], sequence, f"{K6_WORK}/load.json", f"{K6_WORK}/load.csv.gz"), script="load"), range(len(hosts))))
    summaries = [json.loads(fetch(h, f"{K6_WORK}/load.json", tmp_path / f"load{i}.json").read_text())
                 for i, h in enumerate(hosts)]
    points = [segments.read_points(fetch(h, f"{K6_WORK}/load.csv.gz", tmp_path / f"load{i}.csv.gz"))
              for i, h in enumerate(hosts)]
    result = report(segments.merge(summaries, points), len(hosts))
    if out := os.environ.get("LAUNCH_REPORT"):
        Path(out).write_text(json.dumps(result, indent=2))
    assert result["measured"]["peak_vus"] == USERS
    assert all(result["targets"].values()), (result["measured"], [r.stdout[-1500:] for r in runs])
