"""The cluster's monitoring, fed from monitoring/ so it exists once: kube-prometheus-stack (Prometheus,
Alertmanager with monitoring/alertmanager/alertmanager.yml and its receivers' secrets, Grafana with the
generated dashboards), and a blackbox exporter probing the public health endpoint for the uptime SLO.
The app's PrometheusRule and ServiceMonitor come with its manifests (k8s/base), generated from
monitoring/ too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import yaml

TYPE = "chatwizard:infra:Monitoring"
MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
NAMESPACE = "monitoring"
CHART = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "72.6.2")
BLACKBOX_CHART = (
    "https://prometheus-community.github.io/helm-charts",
    "prometheus-blackbox-exporter",
    "9.7.0",
)
RECEIVER_SECRET = "alertmanager-secrets"  # noqa: S105 - a Secret object's name, the directory alertmanager.yml reads
PROBE_INTERVAL = "15s"


@dataclass(frozen=True)
class MonitoringArgs:
    provider: k8s.Provider
    dashboard_hostname: str
    health_url: str
    receiver_secrets: dict[str, pulumi.Output[str]]  # file name -> value
    grafana_admin_password: pulumi.Output[str]
    tls_certificate: pulumi.Output[str]  # the edge's origin certificate, valid for the dashboard host too
    tls_key: pulumi.Output[str]


def dashboards() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((MONITORING / "dashboards").glob("*.json"))}


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        namespace = k8s.core.v1.Namespace(name, metadata={"name": NAMESPACE}, opts=child)
        in_namespace = pulumi.ResourceOptions(parent=namespace, provider=args.provider)
        k8s.core.v1.Secret(
            f"{name}-receivers",
            metadata={"name": RECEIVER_SECRET, "namespace": NAMESPACE},
            string_data=args.receiver_secrets,
            opts=in_namespace,
        )
        k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": "grafana-admin", "namespace": NAMESPACE},
            string_data={"admin-user": "admin", "admin-password": args.grafana_admin_password},
            opts=in_namespace,
        )
        k8s.core.v1.Secret(
            f"{name}-grafana-tls",
            metadata={"name": "grafana-tls", "namespace": NAMESPACE},
            type="kubernetes.io/tls",
            opts=in_namespace,
            string_data={"tls.crt": args.tls_certificate, "tls.key": args.tls_key},
        )
        for file_name, dashboard in dashboards().items():
            k8s.core.v1.ConfigMap(
                f"{name}-{file_name.removesuffix('.json')}",
                opts=in_namespace,
                metadata={
                    "name": file_name.removesuffix(".json"),
                    "namespace": NAMESPACE,
                    "labels": {"grafana_dashboard": "1"},
                },
                data={file_name: dashboard},
            )
        repo, chart, version = CHART
        self.release = k8s.helm.v3.Release(
            name,
            name="kube-prometheus-stack",
            namespace=NAMESPACE,
            chart=chart,
            version=version,
            repository_opts={"repo": repo},
            values=self._values(args),
            opts=in_namespace,
        )
        repo, chart, version = BLACKBOX_CHART
        k8s.helm.v3.Release(
            f"{name}-blackbox",
            name="blackbox-exporter",
            namespace=NAMESPACE,
            chart=chart,
            version=version,
            repository_opts={"repo": repo},
            opts=in_namespace,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-uptime",
            api_version="monitoring.coreos.com/v1",
            kind="Probe",
            metadata={"name": "chatwizard-uptime", "namespace": NAMESPACE},
            spec={
                "jobName": "blackbox",
                "interval": PROBE_INTERVAL,
                "module": "http_2xx",
                "prober": {"url": "blackbox-exporter-prometheus-blackbox-exporter.monitoring.svc:9115"},
                "targets": {"staticConfig": {"static": [args.health_url]}},
            },
            opts=pulumi.ResourceOptions(parent=namespace, provider=args.provider, depends_on=[self.release]),
        )
        self.register_outputs({})

    @staticmethod
    def _values(args: MonitoringArgs) -> dict:
        alertmanager_config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
        return {
            "prometheus": {
                "prometheusSpec": {
                    # Pick up every PrometheusRule/ServiceMonitor, including the app's from k8s/base.
                    "ruleSelectorNilUsesHelmValues": False,
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "probeSelectorNilUsesHelmValues": False,
                    "scrapeInterval": "10s",
                    "evaluationInterval": "10s",
                    "retention": "35d",  # the 30-day SLO window plus margin (monitoring/config.yaml)
                    "storageSpec": {
                        "volumeClaimTemplate": {
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "50Gi"}},
                            }
                        }
                    },
                }
            },
            "alertmanager": {
                "config": alertmanager_config,
                "alertmanagerSpec": {"secrets": [RECEIVER_SECRET], "replicas": 2},
            },
            "grafana": {
                "admin": {"existingSecret": "grafana-admin"},
                "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard"}},
                "ingress": {
                    "enabled": True,
                    "ingressClassName": "nginx",
                    "hosts": [args.dashboard_hostname],
                    "tls": [{"secretName": "grafana-tls", "hosts": [args.dashboard_hostname]}],
                },
            },
        }
