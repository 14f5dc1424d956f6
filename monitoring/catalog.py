"""Which metric names exist: the app's registry plus the exporters' metrics we rely on."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY

import chatwizard.core.metrics  # noqa: F401  (registers the app's metrics)

# Collected by the gunicorn master at scrape time (chatwizard.core.process_metrics).
MASTER_METRICS = {"chatwizard_memory_rss_bytes", "chatwizard_memory_limit_bytes", "chatwizard_processes",
                  "chatwizard_cpu_seconds_total"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
PROMQL_WORDS = {"sum", "rate", "min", "max", "by", "le", "and", "or", "offset", "vector", "histogram_quantile",
                "increase", "avg", "count", "without", "avg_over_time", "on", "ignoring"}


def known_metrics() -> set[str]:
    names = set(MASTER_METRICS)
    for family in REGISTRY.collect():
        names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    exporters = (Path(__file__).parent / "exporter_metrics.txt").read_text().splitlines()
    return names | {line for line in exporters if line and not line.startswith("#")}


def metric_names(expr: str) -> set[str]:
    """Raw metric names an expression reads (recording rules, with a colon, are checked separately)."""
    code = re.sub(r'"[^"]*"', "", expr)
    code = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", code)
    code = re.sub(r"\boffset\s+\w+", "", code)
    code = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", code)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", code))
    return {t for t in tokens if t not in PROMQL_WORDS and ":" not in t}
