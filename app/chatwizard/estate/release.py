"""A canary release on the local estate, judged by production's own AnalysisTemplate.

This stands in for the Argo Rollouts controller, which needs a cluster: haproxy splits real traffic
between the stable app and the candidate by weight (the Rollout's `setWeight` steps), Prometheus scrapes
both with the label the PodMonitor gives pods (`rollouts_pod_template_hash`), and the metrics of
k8s/base/analysis-template.yaml are measured with their own query, interval, initial delay, success
condition and limits, as an AnalysisRun does. A failed (or errored) analysis aborts: the candidate's
weight goes to 0 at once, which is what Argo's abort does to the canary's traffic.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
# The expr-lang subset our conditions use: result[N], numbers, comparisons, &&, ||, len().
ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.Subscript, ast.Name, ast.Load,
           ast.Constant, ast.Call, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq, ast.UnaryOp, ast.USub)


def seconds(duration: str) -> float:
    match = DURATION.match(duration)
    if not match:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match[1]) * UNITS[match[2]]


def condition_holds(condition: str, result: Sequence[float]) -> bool:
    """Evaluate an Argo Rollouts success condition; an index past the result raises IndexError."""
    tree = ast.parse(condition.replace("&&", " and ").replace("||", " or "), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED) or (isinstance(node, ast.Name) and node.id not in ("result", "len")):
            raise ValueError(f"condition {condition!r} uses {type(node).__name__}: not known to this runner")
    namespace = {"result": list(result), "len": len}
    # Only the nodes allowed above reach eval, with no builtins but len.
    return bool(eval(compile(tree, "<condition>", "eval"), {"__builtins__": {}}, namespace))  # noqa: S307


@dataclass(frozen=True)
class Metric:
    name: str
    query: str
    success: str
    interval_s: float
    initial_delay_s: float
    failure_limit: int
    consecutive_error_limit: int


def load_analysis(path: Path, args: dict[str, str]) -> list[Metric]:
    """The template's metrics with `{{args.NAME}}` filled in (defaults from the template, then ``args``)."""
    spec = yaml.safe_load(path.read_text())["spec"]
    values = {a["name"]: a.get("value") for a in spec.get("args", [])} | args
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ValueError(f"the analysis needs the args {missing}")

    def fill(text: str) -> str:
        return re.sub(r"\{\{args\.([\w-]+)\}\}", lambda m: str(values[m[1]]), text)

    return [Metric(m["name"], fill(m["provider"]["prometheus"]["query"]), m["successCondition"],
                   seconds(m["interval"]), seconds(m.get("initialDelay", "0s")), m.get("failureLimit", 0),
                   m.get("consecutiveErrorLimit", 4)) for m in spec["metrics"]]


@dataclass
class Measurement:
    metric: str
    at: float
    phase: str  # Successful, Failed or Error
    value: float | None


@dataclass
class Analysis:
    """One AnalysisRun: every metric measured at its interval until stopped or decided."""

    metrics: list[Metric]
    prometheus_url: str
    measurements: list[Measurement] = field(default_factory=list)
    phase: str = "Running"  # then Successful, Failed or Error

    async def query(self, client: httpx.AsyncClient, metric: Metric) -> list[float]:
        response = await client.get(f"{self.prometheus_url}/api/v1/query", params={"query": metric.query})
        response.raise_for_status()
        return [float(sample["value"][1]) for sample in response.json()["data"]["result"]]

    async def run_metric(self, client: httpx.AsyncClient, metric: Metric) -> str:
        await asyncio.sleep(metric.initial_delay_s)
        failures = errors = 0
        while True:
            try:
                result = await self.query(client, metric)
                ok = condition_holds(metric.success, result)
                errors = 0
                failures += not ok
                phase = "Successful" if ok else "Failed"
                self.measurements.append(Measurement(metric.name, time.time(), phase, result[0]))
            except (httpx.HTTPError, IndexError, KeyError):
                errors += 1
                self.measurements.append(Measurement(metric.name, time.time(), "Error", None))
            if failures > metric.failure_limit:
                return "Failed"
            if errors > metric.consecutive_error_limit:
                return "Error"
            await asyncio.sleep(metric.interval_s)

    async def run(self, stop: asyncio.Event) -> str:
        """Until ``stop`` is set (the rollout finished its steps: Successful) or a metric fails."""
        async with httpx.AsyncClient(timeout=10) as client:
            runs = [asyncio.create_task(self.run_metric(client, m)) for m in self.metrics]
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*runs, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in [*runs, stopped]:
                task.cancel()
            decided = [t.result() for t in done if t is not stopped and not t.cancelled()]
            self.phase = decided[0] if decided else "Successful"
            return self.phase


class Haproxy:
    """haproxy in front of the stable and the candidate app; weights change through its runtime API."""

    def __init__(self, state: Path, port: int, stable: str, candidate: str) -> None:
        self.socket_path = state / "haproxy.sock"
        self.config = state / "haproxy.cfg"
        self.config.write_text(f"""global
    stats socket {self.socket_path} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend app
    bind 127.0.0.1:{port}
    default_backend app
backend app
    # Weighted round robin: the candidate gets exactly its weight's share. A random split would add
    # the sampling noise of a drill's few hundred requests, which production's traffic averages away.
    balance roundrobin
    server stable {stable} weight 100
    server candidate {candidate} weight 0
""")
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["haproxy", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("haproxy did not start")
            time.sleep(0.05)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(str(self.socket_path))
            connection.sendall(line.encode() + b"\n")
            return connection.recv(65536).decode()

    def set_weight(self, candidate_percent: int) -> None:
        """Send ``candidate_percent`` % of new requests to the candidate (the Rollout's setWeight)."""
        self.command(f"set weight app/candidate {candidate_percent}")
        self.command(f"set weight app/stable {100 - candidate_percent}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)


@dataclass
class ReleaseResult:
    outcome: str  # promoted or aborted
    analysis: Analysis
    started: float
    decided: float

    @property
    def seconds_to_decision(self) -> float:
        return self.decided - self.started


async def release(proxy: Haproxy, analysis: Analysis, steps: Sequence[tuple[int, float]],
                  on_step: Callable[[int], Awaitable[None]] | None = None) -> ReleaseResult:
    """Walk the canary steps (weight %, pause s) with the analysis in the background, as Argo does:
    a failed analysis aborts at once (weight back to 0); all steps passed promotes (weight 100)."""
    stop = asyncio.Event()
    started = time.time()
    verdict = asyncio.create_task(analysis.run(stop))
    for weight, pause_s in steps:
        proxy.set_weight(weight)
        if on_step:
            await on_step(weight)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(verdict), pause_s)
        if verdict.done():
            break
    if not verdict.done():
        stop.set()
    phase = await verdict
    promoted = phase == "Successful"
    proxy.set_weight(100 if promoted else 0)
    return ReleaseResult("promoted" if promoted else "aborted", analysis, started, time.time())


def rollout_steps(rollout: dict[str, Any], pause_scale: float = 1.0) -> list[tuple[int, float]]:
    """(weight, pause seconds) pairs from a Rollout's canary steps; pauses scaled for a short drill."""
    steps, weight = [], 0
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        if "setWeight" in step:
            weight = step["setWeight"]
            steps.append((weight, 0.0))
        elif "pause" in step and steps:
            steps[-1] = (weight, seconds(step["pause"]["duration"]) * pause_scale)
    return steps
