"""Production's log aggregation as `pulumi up` would create it: Loki keeps 30 days, Alloy ships the app's
pods into it and scrubs the same secret shapes as the app, and Grafana gets Loki as a data source."""

from __future__ import annotations

import json
import re

from chatwizard.core.logs import SECRET_PATTERNS

from .conftest import Stack

RELEASE = "kubernetes:helm.sh/v3:Release"


def release_values(stack: Stack, name: str) -> dict:
    return next(r["inputs"]["values"] for r in stack.of_type(RELEASE) if r["inputs"]["name"] == name)


def test_loki_keeps_thirty_days_and_accepts_request_ids_as_metadata(stack: Stack):
    loki = release_values(stack, "loki")["loki"]
    assert loki["limits_config"] == {"retention_period": "720h", "allow_structured_metadata": True}
    assert loki["compactor"]["retention_enabled"] is True  # without it retention_period deletes nothing


def test_alloy_scrubs_every_secret_shape_before_loki(stack: Stack):
    config = release_values(stack, "alloy")["alloy"]["configMap"]["content"]
    expressions = [json.loads(e) for e in re.findall(r"expression = (\".*\")", config)]
    assert len(expressions) == len(SECRET_PATTERNS)
    # Alloy's stage.replace swaps each capture group for the replacement (RE2; these patterns read the
    # same in Python's re): the planted secrets go, their context stays.
    line = ('{"dsn": "postgresql://app:pl4nted-pw@db/x", "auth": "Bearer pl4nted.token", '
            '"key": "cwk_Pl4ntedKeyPl4ntedKeyPl4ntedKeyPl4nte", "openai": "sk-pl4ntedpl4ntedpl4nted"}')
    for expression in expressions:
        line = re.sub(expression, lambda m: m.group(0).replace(m.group(1), "[redacted]"), line)
    assert "pl4nted" not in line.lower()
    assert "postgresql://app:[redacted]@db/x" in line and "Bearer [redacted]" in line
    assert config.index("stage.replace") < config.index("stage.json") < config.index("loki.write")


def test_grafana_gets_loki_as_a_data_source(stack: Stack):
    source = next(c for c in stack.of_type("kubernetes:core/v1:ConfigMap")
                  if (c["inputs"]["metadata"].get("labels") or {}).get("grafana_datasource") == "1")
    datasource = json.loads(source["inputs"]["data"]["loki.yaml"])["datasources"][0]
    assert datasource["type"] == "loki" and datasource["url"] == "http://loki.logging.svc:3100"
