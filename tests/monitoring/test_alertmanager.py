"""Alertmanager: the production config is valid and routes each severity where on-call expects it;
the local estate's config keeps the same route tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from chatwizard.estate.monitoring import alertmanager_config

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


def test_warnings_are_inhibited_by_the_matching_critical_only():
    [rule] = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"', 'inhibit_group=~".+"']
    assert rule["target_matchers"] == ['severity="warning"'] and rule["equal"] == ["inhibit_group"]


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
