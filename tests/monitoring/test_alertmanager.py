"""Alertmanager: the production config is valid and routes each severity where on-call expects it;
the local estate's config keeps the same route tree; a real Alertmanager pages once per incident."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from chatwizard.estate.monitoring import alertmanager_config
from monitoring.alert_tests import alerts_by_name
from tests.monitoring.harness import Webhook, alertmanager

CONFIG = Path(__file__).parents[2] / "monitoring" / "alertmanager" / "alertmanager.yml"


def routes_for(config: Path, *labels: str) -> str:
    result = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={config}", *labels],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_production_config_is_valid():
    result = subprocess.run(["amtool", "check-config", str(CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receivers"), [
    (("alertname=ChatWizardHighErrorRate", "severity=critical", "inhibit_group=errors"), "pager,oncall-slack-email"),
    (("alertname=ChatWizardDatabaseConnectionFailures", "severity=critical"), "pager,oncall-slack-email"),
    (("alertname=ChatWizardLatencyHigh", "severity=warning", "inhibit_group=latency"), "slack-warnings"),
    (("alertname=ChatWizardRedisDown", "severity=warning"), "slack-warnings"),
    (("alertname=Watchdog", "severity=none"), "deadmans-switch"),
    (("alertname=SomethingUnlabelled",), "slack-warnings"),
])
def test_routes_by_severity(labels, receivers):
    assert routes_for(CONFIG, *labels) == receivers


def post_alerts(url: str, names: list[str]) -> None:
    """Fire ``names`` as Prometheus would, with the labels their rules give them."""
    rules, now = alerts_by_name(), datetime.now(UTC)
    alerts = [{"labels": {"alertname": name, **rules[name]["labels"]}, "annotations": rules[name]["annotations"],
               "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat()} for name in names]
    httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()


def notified_after_group_wait(webhook: Webhook, url: str, names: list[str]) -> set[str]:
    post_alerts(url, names)
    time.sleep(8)  # critical group_wait is 5 s: everything not inhibited has been sent by now
    return webhook.names()


@pytest.mark.parametrize(("firing", "paged"), [
    # The primary is down: one page for the cause, not four.
    (["ChatWizardDatabaseConnectionFailures", "ChatWizardHighErrorRate", "ChatWizardErrorBudgetBurnFast",
      "ChatWizardHighLatency", "ChatWizardProbeFailing", "ChatWizardErrorBudgetBurnSlow"],
     {"ChatWizardDatabaseConnectionFailures"}),
    # A bad release: the error-rate page, not also the budget's view of the same errors.
    (["ChatWizardHighErrorRate", "ChatWizardErrorBudgetBurnFast", "ChatWizardErrorBudgetBurnDaily"],
     {"ChatWizardHighErrorRate"}),
    # Unrelated alerts are not silenced by either.
    (["ChatWizardHighErrorRate", "ChatWizardMemoryHigh", "ChatWizardCacheHitRateCritical"],
     {"ChatWizardHighErrorRate", "ChatWizardMemoryHigh", "ChatWizardCacheHitRateCritical"}),
    # The symptoms page on their own when the database is fine.
    (["ChatWizardErrorBudgetBurnFast", "ChatWizardProbeFailing"],
     {"ChatWizardErrorBudgetBurnFast", "ChatWizardProbeFailing"}),
])
def test_a_real_alertmanager_pages_for_the_cause_not_its_symptoms(tmp_path: Path, firing, paged):
    webhook = Webhook()
    with alertmanager(tmp_path, webhook) as url:
        assert notified_after_group_wait(webhook, url, firing) == paged


def test_warnings_are_inhibited_by_the_matching_critical_only(tmp_path: Path):
    webhook = Webhook()
    with alertmanager(tmp_path, webhook) as url:
        post_alerts(url, ["ChatWizardLatencyHigh", "ChatWizardCacheHitRateDegraded"])
        post_alerts(url, ["ChatWizardHighLatency"])  # critical, same inhibit_group as the first warning
        time.sleep(2)
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    inhibited = {a["labels"]["alertname"] for a in alerts if a["status"]["inhibitedBy"]}
    assert inhibited == {"ChatWizardLatencyHigh"}


def test_every_receiver_sends_resolved_and_reads_secrets_from_files():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    for receiver in config["receivers"]:
        for kind, targets in receiver.items():
            if kind.endswith("_configs"):
                for target in targets:
                    assert target["send_resolved"] is (receiver["name"] != "deadmans-switch"), receiver["name"]
                    assert "api_url" not in target and "routing_key" not in target  # only the *_file forms


def test_local_config_keeps_the_production_routes(tmp_path: Path):
    local = tmp_path / "alertmanager.yml"
    local.write_text(yaml.safe_dump(alertmanager_config("http://127.0.0.1:9/hook")))
    subprocess.run(["amtool", "check-config", str(local)], check=True, capture_output=True)
    for labels in (("alertname=A", "severity=critical"), ("alertname=B", "severity=warning"), ("alertname=Watchdog",)):
        assert routes_for(local, *labels) == routes_for(CONFIG, *labels)
