"""Turns a run's samples and k6 summaries into loadtest/reports/<name>.{md,json} and PNG charts."""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt

from loadrun.k6 import K6
from loadrun.sampler import Sample

MB = 1024 * 1024


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style quantile from cumulative buckets (linear within a bucket), in seconds."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0
    if total <= 0:
        return None
    rank, previous_edge, previous_count = q * total, 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return previous_edge
            return previous_edge + (edge - previous_edge) * (rank - previous_count) / max(
                count - previous_count, 1e-9
            )
        previous_edge, previous_count = edge, count
    return previous_edge


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def delta(a: Sample, b: Sample, name: str) -> float:
    return b.values.get(name, 0.0) - a.values.get(name, 0.0)


def cache_hit_rate(a: Sample, b: Sample) -> float | None:
    """Chats answered from a cache / all chats (every chat looks in the exact cache first)."""
    hits = delta(a, b, "cache_exact_hit") + delta(a, b, "cache_semantic_hit")
    return ratio(hits, hits + delta(a, b, "cache_exact_miss") - delta(a, b, "cache_semantic_hit"))


def pool_efficiency(a: Sample, b: Sample) -> float | None:
    """Pool acquisitions served without waiting (<= 1 ms) / all acquisitions."""
    unwaited = delta(a, b, "pool_acquisitions_no")
    return ratio(unwaited, unwaited + delta(a, b, "pool_acquisitions_yes"))


def series(samples: list[Sample]) -> list[dict[str, Any]]:
    rows = []
    for a, b in itertools.pairwise(samples):
        seconds = b.t - a.t
        buckets = {edge: b.buckets.get(edge, 0) - a.buckets.get(edge, 0) for edge in b.buckets}
        p95 = quantile(buckets, 0.95)
        rows.append(
            {
                "t_s": b.t,
                "requests_per_s": round(delta(a, b, "requests") / seconds, 1),
                "p95_ms": round(p95 * 1000, 1) if p95 is not None else None,
                "rss_mb": round(b.values.get("chatwizard_memory_rss_bytes", 0) / MB, 1),
                "cpu_percent": round(100 * delta(a, b, "chatwizard_cpu_seconds_total") / seconds, 1),
                "in_flight": b.values.get("chatwizard_http_requests_in_flight", 0),
                "cache_hit_rate": cache_hit_rate(a, b),
                "pool_efficiency": pool_efficiency(a, b),
                "pool_in_use": b.values.get("pool_in_use_primary", 0)
                + b.values.get("pool_in_use_replica", 0),
                "pool_waiting": b.values.get("pool_waiting_primary", 0)
                + b.values.get("pool_waiting_replica", 0),
                "errors_5xx": delta(a, b, "requests_5xx"),
            }
        )
    return rows


def seconds(duration: str) -> float:
    """A k6 duration ("45m", "1h30m", "90s") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    if not parts or not duration:
        raise ValueError(f"not a k6 duration: {duration!r}")
    hours, minutes, secs = (int(p or 0) for p in parts.groups())
    return 3600 * hours + 60 * minutes + secs


def rss_trend_mb_per_hour(rows: list[dict[str, Any]], start_s: float, end_s: float) -> float | None:
    """Least-squares slope of RSS between start_s and end_s of the run, in MB per hour."""
    points = [(r["t_s"], r["rss_mb"]) for r in rows if start_s <= r["t_s"] <= end_s]
    if len(points) < 3:
        return None
    n = len(points)
    mean_t, mean_m = sum(p[0] for p in points) / n, sum(p[1] for p in points) / n
    variance = sum((t - mean_t) ** 2 for t, _ in points)
    return round(3600 * sum((t - mean_t) * (m - mean_m) for t, m in points) / variance, 1)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    k6 = subprocess.run([str(K6), "version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": cpu,
        "cores": len(
            [1 for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("processor")]
        ),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "k6": k6,
    }


def chart(
    rows: list[dict[str, Any]], key: str, title: str, unit: str, path: Path, line: float | None = None
) -> None:
    points = [(r["t_s"] / 60, r[key]) for r in rows if r[key] is not None]
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.plot([p[0] for p in points], [p[1] for p in points], linewidth=1.2)
    if line is not None:
        axis.axhline(line, color="red", linestyle="--", linewidth=1)
    axis.set_title(title)
    axis.set_xlabel("minutes")
    axis.set_ylabel(unit)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def charts(rows: list[dict[str, Any]], out: Path, name: str) -> dict[str, str]:
    specs = {
        "latency": ("p95_ms", "app p95 latency per interval (server side)", "ms", 3000),
        "throughput": ("requests_per_s", "requests per second", "req/s", None),
        # No 2 GB line: at that scale a soak's trend is invisible; the peak is in the targets table.
        "rss": ("rss_mb", "app RSS, master + workers (target: < 2,048 MB at peak)", "MB", None),
        "cache": ("cache_hit_rate", "chat cache hit rate per interval", "share", 0.7),
    }
    files = {}
    for label, (key, title, unit, line) in specs.items():
        path = out / f"{name}-{label}.png"
        chart(rows, key, title, unit, path, line)
        files[label] = path.name
    return files


def write(out: Path, name: str, report: dict[str, Any], markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown)
