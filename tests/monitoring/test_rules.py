"""Alert rules: valid, tested on both sides of every threshold and `for`, documented, generated."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import alert_tests, generate
from monitoring.catalog import ENVIRONMENTS, known_metrics, metric_names

ROOT = Path(__file__).parents[2]
MONITORING = ROOT / "monitoring"
RUNBOOKS = ROOT / "runbooks"


def alerts() -> dict[str, dict]:
    return alert_tests.alerts_by_name()


def test_rules_are_valid_and_generated_from_config():
    subprocess.run(["promtool", "check", "rules", *sorted((MONITORING / "rules").glob("*.yml"))], check=True,
                   capture_output=True)
    for name, document in generate.rule_files().items():
        assert (MONITORING / "rules" / name).read_text() == generate.render(document), \
            f"rules/{name} is stale: run python -m monitoring.generate"


def test_promtool_unit_tests_pass_and_are_current():
    for name, text in alert_tests.rendered().items():
        assert (MONITORING / "tests" / name).read_text() == text, "run python -m monitoring.alert_tests"
    files = sorted((MONITORING / "tests").glob("*.yml"))
    result = subprocess.run(["promtool", "test", "rules", *files], capture_output=True, text=True, cwd=MONITORING / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_on_both_sides_of_threshold_and_for():
    cases = {c.alert: c for c in alert_tests.CASES}
    for name, rule in alerts().items():
        if name in alert_tests.ALWAYS_FIRING:
            continue
        assert name in cases, f"{name} has no promtool test case"
        case = cases[name]
        assert case.quiet, f"{name}: no scenario on the quiet side of its threshold"
        if rule["for"] != "0s":
            assert case.pending_at is not None, f"{name}: nothing checks that it waits for `for: {rule['for']}`"


def test_every_alert_is_labelled_and_annotated():
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning", "none"), name
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), name
        assert rule["annotations"]["runbook_url"].endswith(f"runbooks/{name}.md")


def test_runbooks_and_alerts_are_one_to_one():
    manuals = {"README", "operations-manual", "troubleshooting", "disaster-recovery", "incident-response"}
    documented = {p.stem for p in RUNBOOKS.glob("*.md")} - manuals
    assert documented == set(alerts()), f"missing: {set(alerts()) - documented}; orphaned: {documented - set(alerts())}"
    for name in alerts():
        text = (RUNBOOKS / f"{name}.md").read_text()
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            assert section in text, f"runbooks/{name}.md lacks {section}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rules_reference_only_metrics_that_exist(environment: str):
    known = known_metrics(environment)
    for path in (MONITORING / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = metric_names(rule["expr"]) - known
                assert not unknown, f"{rule.get('alert') or rule.get('record')} reads unknown metrics {unknown}"
