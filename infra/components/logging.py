"""The cluster's log aggregation: Grafana Loki (single binary, 30 days on its volume) fed by Grafana
Alloy, which tails the app's pods, scrubs secret shapes the app's own chain missed and keeps the request
id as structured metadata; Grafana (kube-prometheus-stack, monitoring.py) gets Loki as a data source.
The secret patterns are the app's (chatwizard.core.logs), so both layers redact the same."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from chatwizard.core.logs import REDACTED, SECRET_PATTERNS

TYPE = "chatwizard:infra:Logging"
NAMESPACE = "logging"
APP_NAMESPACE = "chatwizard"
REPO = "https://grafana.github.io/helm-charts"
LOKI_CHART = ("loki", "6.30.1")
ALLOY_CHART = ("alloy", "1.1.1")
RETENTION = "720h"  # 30 days: the incident-review window (docs/observability.md)
LOKI_URL = f"http://loki.{NAMESPACE}.svc:3100"


def alloy_config() -> str:
    """Alloy's pipeline: the chatwizard namespace's pods -> scrub -> fields -> Loki."""
    # Alloy's stage.replace replaces the capture group: the secret, with its context kept around it.
    scrub = "\n".join(
        f"  stage.replace {{\n    expression = {json.dumps(f'{s.before}({s.secret}){s.after}')}\n"
        f"    replace    = {json.dumps(REDACTED)}\n  }}"
        for s in SECRET_PATTERNS.values())
    return f"""discovery.kubernetes "pods" {{
  role = "pod"
  namespaces {{ names = ["{APP_NAMESPACE}"] }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
}}

loki.source.kubernetes "pods" {{
  targets    = discovery.relabel.pods.output
  forward_to = [loki.process.app.receiver]
}}

loki.process "app" {{
{scrub}
  stage.json {{
    expressions = {{ level = "level", request_id = "request_id" }}
  }}
  stage.labels {{
    values = {{ level = "" }}
  }}
  // One value per request: structured metadata, not a label (labels make streams).
  stage.structured_metadata {{
    values = {{ request_id = "" }}
  }}
  forward_to = [loki.write.default.receiver]
}}

loki.write "default" {{
  endpoint {{
    url = "{LOKI_URL}/loki/api/v1/push"
  }}
}}
"""


def loki_values() -> dict:
    return {
        "deploymentMode": "SingleBinary",
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {"configs": [{"from": "2026-01-01", "store": "tsdb", "object_store": "filesystem",
                                          "schema": "v13", "index": {"prefix": "index_", "period": "24h"}}]},
            "limits_config": {"retention_period": RETENTION, "allow_structured_metadata": True},
            "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
        },
        "singleBinary": {"replicas": 1, "persistence": {"size": "50Gi"}},
        "read": {"replicas": 0}, "write": {"replicas": 0}, "backend": {"replicas": 0},
        "chunksCache": {"enabled": False}, "resultsCache": {"enabled": False},
        "gateway": {"enabled": False}, "lokiCanary": {"enabled": False}, "test": {"enabled": False},
    }


def alloy_values() -> dict:
    return {"controller": {"type": "deployment", "replicas": 1},
            "alloy": {"configMap": {"content": alloy_config()}}}


@dataclass(frozen=True)
class LoggingArgs:
    provider: k8s.Provider


class Logging(pulumi.ComponentResource):
    def __init__(self, name: str, args: LoggingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        namespace = k8s.core.v1.Namespace(f"{name}-logging", metadata={"name": NAMESPACE}, opts=child)
        in_namespace = pulumi.ResourceOptions(parent=namespace, provider=args.provider)
        for chart, values in ((LOKI_CHART, loki_values()), (ALLOY_CHART, alloy_values())):
            k8s.helm.v3.Release(f"{name}-{chart[0]}", name=chart[0], namespace=NAMESPACE, chart=chart[0],
                                version=chart[1], repository_opts={"repo": REPO}, values=values,
                                opts=in_namespace)
        # kube-prometheus-stack's Grafana loads data sources from ConfigMaps with this label.
        k8s.core.v1.ConfigMap(
            f"{name}-loki-datasource", opts=child,
            metadata={"name": "loki-datasource", "namespace": "monitoring",
                      "labels": {"grafana_datasource": "1"}},
            data={"loki.yaml": json.dumps({"apiVersion": 1, "datasources": [
                {"name": "Loki", "type": "loki", "uid": "loki", "url": LOKI_URL, "access": "proxy"}]})},
        )
        self.register_outputs({})
