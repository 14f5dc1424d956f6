"""The launch VM serves real learners through its TLS edge, driven by k6 on the load generators:
the smoke journey with 0 failures, one scenario split across two load generators with execution
segments counting the same iterations and users as on one host, and invitations mailed through the
relay."""

from __future__ import annotations

import json
import re
import ssl
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from loadrun import segments
from tests.ansible.conftest import K6_WORK, AnsibleLab, fetch, k6

# The lab's first use builds its base image (minutes); converging it twice takes a few more.
pytestmark = pytest.mark.timeout(1800)
USERS = 30
ITERATIONS = 2


def test_smoke_through_the_tls_edge_has_no_failures(ansible_lab: AnsibleLab, traffic: dict[str, str], tmp_path: Path):
    host = ansible_lab.host("loadgen-1")
    result = k6(host, {**traffic, "USERS": str(USERS), "RAMP": "5s", "HOLD": "20s"},
                f"--summary-export={K6_WORK}/smoke.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(fetch(host, f"{K6_WORK}/smoke.json", tmp_path / "smoke.json").read_text())["metrics"]
    assert metrics["http_req_failed"]["passes"] == 0 and metrics["checks"]["fails"] == 0
    assert metrics["iterations"]["count"] >= USERS
    assert metrics["http_req_duration"]["p(95)"] < 3000


def test_execution_segments_on_two_hosts_add_up_to_the_run_on_one(ansible_lab: AnsibleLab, traffic: dict[str, str],
                                                                   tmp_path: Path):
    env = {**traffic, "USERS": str(USERS), "ITERATIONS": str(ITERATIONS)}
    one = ansible_lab.host("loadgen-1")
    # Counting, not timing: latency thresholds (the smoke's business) must not fail these runs.
    single = k6(one, env, "--no-thresholds", f"--summary-export={K6_WORK}/single.json")
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    whole = json.loads(fetch(one, f"{K6_WORK}/single.json", tmp_path / "single.json").read_text())

    sequence, parts = segments.plan(2)
    hosts = [ansible_lab.host("loadgen-1"), ansible_lab.host("loadgen-2")]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda i: k6(hosts[i], env, "--no-thresholds", *segments.k6_args(
            parts[i], sequence, f"{K6_WORK}/part.json", f"{K6_WORK}/part.csv.gz")), range(2)))
    assert all(r.returncode == 0 for r in runs), [r.stdout[-2000:] + r.stderr[-2000:] for r in runs]
    summaries = [json.loads(fetch(h, f"{K6_WORK}/part.json", tmp_path / f"part{i}.json").read_text())
                 for i, h in enumerate(hosts)]
    points = [segments.read_points(fetch(h, f"{K6_WORK}/part.csv.gz", tmp_path / f"part{i}.csv.gz"))
              for i, h in enumerate(hosts)]
    merged = segments.merge(summaries, points)["metrics"]

    # Each host did half the users' work; together exactly what one host did alone.
    assert [s["metrics"]["vus_max"]["value"] for s in summaries] == [USERS // 2, USERS // 2]
    assert merged["vus_max"]["value"] == whole["metrics"]["vus_max"]["value"] == USERS
    assert merged["iterations"]["count"] == whole["metrics"]["iterations"]["count"] == USERS * ITERATIONS
    assert merged["http_req_failed"]["passes"] == 0 and merged["checks"]["fails"] == 0
    requests = sum(len(p["http_req_duration"]) for p in points)
    assert merged["http_reqs"]["count"] == requests  # every request's duration is in the merged trend
    assert merged["http_req_duration"]["min"] <= merged["http_req_duration"]["p(95)"] <= merged["http_req_duration"]["max"]


def test_an_invitation_reaches_the_learner_through_the_relay_over_starttls(ansible_lab: AnsibleLab,
                                                                           traffic: dict[str, str]):
    """The launch VM mails invitations through its relay (which refuses mail before STARTTLS and is
    verified against its CA), and the link points at the public https address, not the app's port."""
    address = f"invited-{uuid.uuid4().hex[:8]}@example.com"
    context = ssl.create_default_context(cadata=ansible_lab.ca.pem)
    with httpx.Client(verify=context, trust_env=False, timeout=30) as client:
        made = client.post(f"https://{ansible_lab.address('launch-1')}/v1/admin/invitations",
                           headers={"Authorization": f"Bearer {traffic['ADMIN_KEY']}"},
                           json={"email": address, "tier": "free"})
    assert made.status_code == 201, made.text
    mail = [m for m in ansible_lab.mail.messages() if m["To"] == address]  # handed over before the 201
    assert len(mail) == 1
    assert re.search(r"https://chat\.lab/\S+#token=\S+", mail[0].get_content())
