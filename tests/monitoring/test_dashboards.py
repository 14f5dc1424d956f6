"""Dashboards: committed JSON is what the generator makes; every query parses; every metric exists."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from monitoring.catalog import ENVIRONMENTS, known_metrics, metric_names
from monitoring.dashboards import generate
from monitoring.generate import rule_files

DASHBOARDS = Path(generate.__file__).parent


def test_committed_dashboards_are_generated():
    for name, text in generate.rendered().items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run python -m monitoring.dashboards.generate"
    assert {p.name for p in DASHBOARDS.glob("*.json")} == set(generate.rendered())


def test_every_panel_has_a_description_and_a_query():
    for name in generate.rendered():
        panels = [p for p in json.loads((DASHBOARDS / name).read_text())["panels"] if p["type"] != "row"]
        assert panels, name
        for panel in panels:
            assert panel.get("description") and panel.get("targets"), f"{name}: {panel.get('title')}"


def test_every_query_parses(prometheus_parser: str):
    for expr in generate.expressions():
        concrete = expr.replace("$__rate_interval", "1m")
        response = httpx.get(f"{prometheus_parser}/api/v1/format_query", params={"query": concrete})
        assert response.status_code == 200, f"{expr}: {response.text}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_metric_exists(environment: str):
    recorded = {r["record"] for doc in rule_files().values() for g in doc["groups"] for r in g["rules"] if "record" in r}
    known = known_metrics(environment)
    for expr in generate.expressions():
        assert not metric_names(expr) - known, f"{expr} reads unknown metrics {metric_names(expr) - known}"
        for name in {t for t in expr.replace("(", " ").replace(")", " ").split() if ":" in t and "{" not in t}:
            assert name.split("{")[0] in recorded or name.startswith("$"), f"{name} is not a recording rule"


def test_generated_docs_are_current():
    from monitoring.catalog import metrics_doc

    docs = DASHBOARDS.parents[1] / "docs"
    assert (docs / "dashboards.md").read_text() == generate.panel_docs(), "run python -m monitoring.dashboards.generate"
    assert (docs / "metrics.md").read_text() == metrics_doc(), "run python -m monitoring.catalog"
