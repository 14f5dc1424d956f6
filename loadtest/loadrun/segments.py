"""One k6 scenario split across load generators with execution segments, merged back into one summary.

Past what one machine drives, each load generator runs `k6 run --execution-segment=<its part>
--execution-segment-sequence=<all parts>` of the same script at the same time (ansible/README.md).
Each part writes its summary (--summary-export) and its raw points (--out csv=...gz). The merge
adds counters, rates and peak VUs, and recomputes every trend's percentiles from the raw points of
all parts (percentiles of parts cannot be averaged), giving a summary in k6's own --summary-export
shape: what loadrun's reports are built from.

    python -m loadrun.segments merged.json part1-summary.json:part1.csv.gz part2-summary.json:part2.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from collections import defaultdict
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np

from loadrun.k6 import TREND_STATS


def plan(parts: int) -> tuple[str, list[str]]:
    """The execution-segment sequence for `parts` equal parts, and each part's segment."""
    bounds = [Fraction(i, parts) for i in range(parts + 1)]
    text = [str(b) for b in bounds]
    return ",".join(text), [f"{a}:{b}" for a, b in pairwise(text)]


def k6_args(segment: str, sequence: str, summary: str, points: str) -> list[str]:
    """What one load generator adds to `k6 run` for its part."""
    return [f"--execution-segment={segment}", f"--execution-segment-sequence={sequence}",
            f"--summary-export={summary}", f"--summary-trend-stats={TREND_STATS}", f"--out=csv={points}"]


def read_points(path: Path) -> dict[str, list[float]]:
    values: dict[str, list[float]] = defaultdict(list)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            values[row["metric_name"]].append(float(row["metric_value"]))
    return values


def trend(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    stats = {"avg": float(a.mean()), "min": float(a.min()), "med": float(np.percentile(a, 50)),
             "max": float(a.max())}
    for q in (90, 95, 99):
        stats[f"p({q})"] = float(np.percentile(a, q))
    return stats


def merge(summaries: list[dict], points: list[dict[str, list[float]]]) -> dict:
    """Summaries and raw points of the parts of one run -> one summary of the whole run."""
    names = {name for s in summaries for name in s["metrics"]}
    # The parts run side by side: the run lasted as long as the longest part.
    durations = [m["count"] / m["rate"] for s in summaries
                 if (m := s["metrics"].get("iterations")) and m["rate"]]
    duration = max(durations, default=0.0)
    merged: dict[str, dict] = {}
    for name in sorted(names):
        parts = [s["metrics"][name] for s in summaries if name in s["metrics"]]
        first = parts[0]
        if "count" in first:  # counter
            count = sum(p["count"] for p in parts)
            merged[name] = {"count": count, "rate": count / duration if duration else 0.0}
        elif "passes" in first:  # rate
            passes, fails = sum(p["passes"] for p in parts), sum(p["fails"] for p in parts)
            total = passes + fails
            merged[name] = {"passes": passes, "fails": fails, "value": passes / total if total else 0}
        elif "avg" in first:  # trend: from every part's raw points
            values = [v for part in points for v in part.get(name, [])]
            merged[name] = trend(values) if values else dict(first)
        else:  # gauge (vus, vus_max): the parts' VUs add up
            merged[name] = {k: sum(p[k] for p in parts) for k in ("value", "min", "max") if k in first}
        crossed = [t for p in parts for t, failed in p.get("thresholds", {}).items() if failed]
        if any("thresholds" in p for p in parts):
            merged[name]["thresholds"] = {t: t in crossed for p in parts for t in p.get("thresholds", {})}
    root = summaries[0].get("root_group", {})
    return {"metrics": merged, "root_group": root, "segments": len(summaries)}


def main(argv: list[str]) -> None:
    out, *pairs = argv
    summaries, points = [], []
    for pair in pairs:
        summary, csv_path = pair.split(":", 1)
        summaries.append(json.loads(Path(summary).read_text()))
        points.append(read_points(Path(csv_path)))
    Path(out).write_text(json.dumps(merge(summaries, points), indent=2))
    print(f"merged {len(pairs)} parts into {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
