"""The release analysis decides for real: a candidate app takes a share of real traffic next to the
stable one, Prometheus scrapes both, and k8s/base/analysis-template.yaml (the one Argo Rollouts runs in
production) promotes a good candidate and aborts a bad one by itself.

A bad candidate is the app with a bug put into a copy of its code: one route that raises (5xx), or one
that takes 4 s (latency past the SLO).
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from chatwizard.estate.processes import stop_process, wait_ready
from chatwizard.estate.release import Analysis, Haproxy, ReleaseResult, load_analysis, release, rollout_steps
from monitoring.canary import ANALYSIS_TEMPLATE
from tests.conftest import AppServer, app_env, create_user, free_port, start_server

ROOT = Path(__file__).parents[2]
ROLLOUT = yaml.safe_load((ROOT / "k8s" / "base" / "rollout.yaml").read_text())
# Production pauses 3 minutes per step. A good candidate walks them at a tenth of that (18 s each), so
# the suite need not wait 12 minutes for a promotion; a bad one gets production's pauses, since what is
# measured is that the analysis aborts during the first (2 %) step, before more learners are sent to it.
PAUSE_SCALE = {"good": 0.1, "5xx": 1.0, "slow": 1.0}
RATE = 25  # requests per second through the proxy
SEARCH = "    videos, cached = await service.search(services, q, limit)\n"
BUGS = {
    "good": None,
    "5xx": (SEARCH, '    raise RuntimeError("candidate bug")\n' + SEARCH),
    "slow": (SEARCH, "    import asyncio\n    await asyncio.sleep(4)\n" + SEARCH),
}


def candidate_code(tmp: Path, bug: tuple[str, str] | None) -> Path:
    """A copy of the app's code, with ``bug`` put into its search route."""
    import chatwizard

    root = tmp / "code"
    shutil.copytree(Path(chatwizard.__file__).parent, root / "chatwizard")
    if bug:
        routes = root / "chatwizard" / "videos" / "routes.py"
        assert bug[0] in routes.read_text()
        routes.write_text(routes.read_text().replace(bug[0], bug[1]))
    return root


@dataclass
class Drill:
    proxy: Haproxy
    prometheus_url: str
    stable: AppServer
    key: str
    state: Path


def prometheus_config(targets: dict[str, str]) -> dict:
    return {"global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "scrape_configs": [{"job_name": "chatwizard", "static_configs": [
                {"targets": [address], "labels": {"rollouts_pod_template_hash": template_hash}}
                for template_hash, address in targets.items()]}]}


@pytest.fixture(scope="module")
def drill(databases, redis_node, fake_llm, catalogue, tmp_path_factory) -> Iterator[Drill]:
    state = tmp_path_factory.mktemp("release")
    env = app_env(databases, redis_node, fake_llm, state / "stable", CHATWIZARD_RATE_LIMIT_PRO="1000000/hour")
    (state / "stable").mkdir()
    stable = start_server(env, state / "stable")
    proxy = Haproxy(state, free_port(), stable.base_url.removeprefix("http://"), "127.0.0.1:1")
    proxy.start()
    port = free_port()
    (state / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config({})))
    prometheus = subprocess.Popen(["prometheus", f"--config.file={state / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={state / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                                   "--web.enable-lifecycle"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/-/ready", prometheus, timeout_s=30)
    yield Drill(proxy, url, stable, asyncio.run(create_user(databases, "pro")).key, state)
    prometheus.terminate()
    proxy.stop()
    stop_process(stable.process)


def run_release(drill: Drill, name: str, databases, redis_node, fake_llm) -> tuple[ReleaseResult, list[dict]]:
    tmp = drill.state / name
    tmp.mkdir()
    env = app_env(databases, redis_node, fake_llm, tmp, CHATWIZARD_RATE_LIMIT_PRO="1000000/hour",
                  PYTHONPATH=str(candidate_code(tmp, BUGS[name])))
    candidate = start_server(env, tmp)
    template_hash = f"candidate-{name}"
    stable_metrics, candidate_metrics = (s.metrics_url.removeprefix("http://").removesuffix("/metrics")
                                         for s in (drill.stable, candidate))
    (drill.state / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(
        {"stable": stable_metrics, template_hash: candidate_metrics})))
    subprocess.run(["curl", "-sf", "-X", "POST", f"{drill.prometheus_url}/-/reload"], check=True)
    drill.proxy.command(f"set server app/candidate addr 127.0.0.1 port {candidate.base_url.rsplit(':', 1)[1]}")
    steps = rollout_steps(ROLLOUT, PAUSE_SCALE[name])
    duration = int(sum(p for _, p in steps)) + 30  # k6 is stopped once the release is decided
    out = tmp / "k6.csv"
    k6 = subprocess.Popen([str(Path(sys.executable).with_name("k6")), "run", "--quiet", "--out", f"csv={out}",
                           "-e", f"BASE_URL={drill.proxy.url}", "-e", f"KEY={drill.key}", "-e", f"RATE={RATE}",
                           "-e", f"DURATION={duration}s", str(ROOT / "loadtest" / "k6" / "canary.js")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # traffic flowing on the stable app before the candidate gets any
        analysis = Analysis(load_analysis(ANALYSIS_TEMPLATE, {"canary-hash": template_hash}), drill.prometheus_url)
        result = asyncio.run(release(drill.proxy, analysis, steps))
        time.sleep(2)
    finally:
        k6.terminate()
        k6.wait(30)
        drill.proxy.set_weight(0)
        stop_process(candidate.process)
    with out.open() as f:
        requests = [row for row in csv.DictReader(f) if row["metric_name"] == "http_reqs"]
    return result, requests


def in_window(requests: list[dict], start: float, end: float) -> list[dict]:
    return [r for r in requests if start <= float(r["timestamp"]) <= end + 1]


def failed_share(requests: list[dict], start: float, end: float) -> tuple[int, int]:
    window = in_window(requests, start, end)
    return sum(r["expected_response"] == "false" for r in window), len(window)


def failures(requests: list[dict], start: float, end: float) -> Counter:
    """How many requests failed, by method, URL path and status (what an assertion message needs)."""
    return Counter((r["method"], r["url"].split("?")[0].split("/", 3)[-1], r["status"])
                   for r in in_window(requests, start, end) if r["expected_response"] == "false")


def test_a_good_candidate_is_promoted_with_no_failed_request(drill, databases, redis_node, fake_llm):
    result, requests = run_release(drill, "good", databases, redis_node, fake_llm)
    failed, total = failed_share(requests, result.started, result.decided)
    print(f"\ngood candidate: {result.outcome} after {result.seconds_to_decision:.0f} s; "
          f"{failed} of {total} requests failed; measurements: {len(result.analysis.measurements)}")
    assert result.outcome == "promoted", result.analysis.measurements
    assert total > RATE * 30 and failed == 0, failures(requests, result.started, result.decided)
    assert all(m.phase == "Successful" for m in result.analysis.measurements)


@pytest.mark.parametrize("bug", ["5xx", "slow"])
def test_a_bad_candidate_is_rolled_back_by_itself_within_two_minutes(drill, databases, redis_node, fake_llm, bug):
    result, requests = run_release(drill, bug, databases, redis_node, fake_llm)
    failed, total = failed_share(requests, result.started, result.decided)
    print(f"\n{bug} candidate: {result.outcome} after {result.seconds_to_decision:.0f} s; "
          f"{failed} of {total} requests failed ({100 * failed / max(total, 1):.2f} %); measurements: "
          + ", ".join(f"{m.metric} {m.at - result.started:.0f} s {m.phase} {m.value}" for m in result.analysis.measurements))
    assert result.outcome == "aborted"
    assert result.seconds_to_decision < 120
    assert failed / total < 0.01, failures(requests, result.started, result.decided)
    failing_metric = "error-ratio" if bug == "5xx" else "latency-p95"
    assert any(m.metric == failing_metric and m.phase == "Failed" for m in result.analysis.measurements)


def test_the_committed_analysis_template_is_generated():
    from monitoring.canary import render

    assert ANALYSIS_TEMPLATE.read_text() == render(), "stale: run python -m monitoring.canary"
