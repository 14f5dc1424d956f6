"""The cluster's monitoring, fed from monitoring/ so it exists once: kube-prometheus-stack (Prometheus,
Alertmanager with monitoring/alertmanager/alertmanager.yml and its receivers' secrets, Grafana with the
generated dashboards, loaded by its sidecar from labelled ConfigMaps), prometheus-adapter (the HPA's
per-pod in-flight metric), the Postgres and Redis exporters (`pg_up`, `redis_up`: the rules' and panels'
data-store branches), and a blackbox exporter probing the public health endpoint and, with a probe key,
the authenticated `/v1/me` as the local estate does. The app's PrometheusRule and PodMonitor come with
its manifests (k8s/base), the rules generated from monitoring/ too, and need this component's CRDs first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra.components.cluster import STORAGE_CLASS
from infra.components.database import CA_BUNDLE_FILE
from infra.facts import load as facts

TYPE = "chatwizard:infra:Monitoring"
MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
NAMESPACE = facts().namespaces["monitoring"]
COMMUNITY = "https://prometheus-community.github.io/helm-charts"
CHART = (COMMUNITY, "kube-prometheus-stack", "72.6.2")
CHARTS = {  # release -> (chart, version), all from the prometheus-community repository
    "prometheus-adapter": ("prometheus-adapter", "4.14.1"),
    "postgres-exporter": ("prometheus-postgres-exporter", "6.10.2"),
    "redis-exporter": ("prometheus-redis-exporter", "6.10.1"),
    "blackbox-exporter": ("prometheus-blackbox-exporter", "9.7.0"),
}
RECEIVER_SECRET = "alertmanager-secrets"  # noqa: S105 - a Secret object's name, the directory alertmanager.yml reads
EXPORTER_SECRET = "datastore-exporters"  # noqa: S105 - a Secret object's name
PROBE_SECRET = "blackbox-probe-key"  # noqa: S105 - a Secret object's name
PROBE_KEY_FILE = "/etc/blackbox/probe/api-key"
EXPORTER_CA_DIR = "/etc/rds-ca"
PROBE_INTERVAL = "15s"
IN_FLIGHT = "chatwizard_http_requests_in_flight"  # the HPA's per-pod metric (k8s/base/hpa.yaml)


@dataclass(frozen=True)
class MonitoringArgs:
    provider: k8s.Provider
    dashboard_hostname: str
    api_url: str
    probe_api_key: pulumi.Output[str] | None  # a service key for the authenticated probe; None: not yet made
    receiver_secrets: dict[str, pulumi.Output[str]]  # file name -> value
    grafana_admin_password: pulumi.Output[str]
    tls_certificate: pulumi.Output[str]  # the edge's origin certificate, valid for the dashboard host too
    tls_key: pulumi.Output[str]
    postgres_host: pulumi.Output[str]  # the primary, which the exporter reaches as the app's own login
    postgres_login: str
    postgres_password: pulumi.Output[str]
    redis_address: pulumi.Output[str]  # rediss://host:port
    redis_password: pulumi.Output[str]
    rds_ca_bundle: str
    depends_on: list[pulumi.Resource]  # the ingress controller (Grafana's Ingress), the default StorageClass


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
        postgres_url = pulumi.Output.format(
            "postgresql://{0}:{1}@{2}:{3}/chatwizard?sslmode=verify-full&sslrootcert={4}/{5}",
            args.postgres_login, args.postgres_password, args.postgres_host, facts().ports["postgres"],
            EXPORTER_CA_DIR, CA_BUNDLE_FILE,
        )
        k8s.core.v1.Secret(
            f"{name}-exporters",
            metadata={"name": EXPORTER_SECRET, "namespace": NAMESPACE},
            string_data={"postgres-url": postgres_url, "redis-password": args.redis_password},
            opts=in_namespace,
        )
        if args.probe_api_key is not None:  # the blackbox exporter mounts only this one
            k8s.core.v1.Secret(
                f"{name}-probe-key",
                metadata={"name": PROBE_SECRET, "namespace": NAMESPACE},
                string_data={PROBE_KEY_FILE.rsplit("/", 1)[1]: args.probe_api_key},
                opts=in_namespace,
            )
        k8s.core.v1.ConfigMap(
            f"{name}-rds-ca",
            metadata={"name": "rds-ca", "namespace": NAMESPACE},
            data={CA_BUNDLE_FILE: args.rds_ca_bundle},
            opts=in_namespace,
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
            name=facts().prometheus_release,  # names the Prometheus Service the analysis and adapter query
            namespace=NAMESPACE,
            chart=chart,
            version=version,
            repository_opts={"repo": repo},
            values=self._values(args),
            opts=pulumi.ResourceOptions(parent=namespace, provider=args.provider, depends_on=args.depends_on),
        )
        # ServiceMonitors and Probes are the stack's custom resources: each waits for its CRDs.
        after_crds = pulumi.ResourceOptions(
            parent=namespace, provider=args.provider, depends_on=[self.release]
        )
        values = self._exporter_values(args)
        self.releases = {
            release: k8s.helm.v3.Release(
                f"{name}-{release}",
                name=release,
                namespace=NAMESPACE,
                chart=chart,
                version=version,
                repository_opts={"repo": COMMUNITY},
                values=values[release],
                opts=after_crds,
            )
            for release, (chart, version) in CHARTS.items()
        }
        self.probes = [self._probe(name, "uptime", "http_2xx", f"{args.api_url}/healthz", args)]
        if args.probe_api_key is not None:
            self.probes.append(self._probe(name, "api", "http_api", f"{args.api_url}/v1/me", args))
        self.register_outputs({})

    def _probe(
        self, name: str, suffix: str, module: str, url: str, args: MonitoringArgs
    ) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            f"{name}-{suffix}",
            api_version="monitoring.coreos.com/v1",
            kind="Probe",
            metadata={"name": f"chatwizard-{suffix}", "namespace": NAMESPACE},
            spec={
                "jobName": "blackbox",
                "interval": PROBE_INTERVAL,
                "module": module,
                "prober": {"url": f"blackbox-exporter-prometheus-blackbox-exporter.{NAMESPACE}.svc:9115"},
                "targets": {"staticConfig": {"static": [url]}},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[self.release, self.releases["blackbox-exporter"]],
            ),
        )

    @staticmethod
    def _exporter_values(args: MonitoringArgs) -> dict[str, dict]:
        service_monitor = {"serviceMonitor": {"enabled": True}}
        return {
            "prometheus-adapter": {
                "prometheus": {
                    "url": f"http://{facts().prometheus_host}",
                    "port": facts().ports["prometheus"],
                },
                "rules": {
                    "default": False,
                    "custom": [
                        {
                            "seriesQuery": f'{IN_FLIGHT}{{namespace!="",pod!=""}}',
                            "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                                        "pod": {"resource": "pod"}}},
                            "name": {"as": IN_FLIGHT},
                            "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                        }
                    ],
                },
            },
            "postgres-exporter": {
                **service_monitor,
                "config": {"datasourceSecret": {"name": EXPORTER_SECRET, "key": "postgres-url"}},
                "extraVolumes": [{"name": "rds-ca", "configMap": {"name": "rds-ca"}}],
                "extraVolumeMounts": [{"name": "rds-ca", "mountPath": EXPORTER_CA_DIR, "readOnly": True}],
            },
            "redis-exporter": {
                **service_monitor,
                "redisAddress": args.redis_address,
                "auth": {"enabled": True, "secret": {"name": EXPORTER_SECRET, "key": "redis-password"}},
            },
            "blackbox-exporter": {
                "config": {
                    "modules": {
                        "http_2xx": {
                            "prober": "http", "timeout": "4s", "http": {"valid_status_codes": [200]}
                        },
                        "http_api": {
                            "prober": "http",
                            "timeout": "4s",
                            "http": {
                                "valid_status_codes": [200],
                                "authorization": {"type": "Bearer", "credentials_file": PROBE_KEY_FILE},
                            },
                        },
                    }
                },
                "extraSecretMounts": [
                    {"name": "probe", "mountPath": PROBE_KEY_FILE.rsplit("/", 1)[0],
                     "secretName": PROBE_SECRET, "readOnly": True}
                ] if args.probe_api_key is not None else [],
            },
        }

    @staticmethod
    def _values(args: MonitoringArgs) -> dict:
        alertmanager_config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
        return {
            "prometheus": {
                "prometheusSpec": {
                    # Pick up every PrometheusRule/ServiceMonitor/PodMonitor, including the app's from
                    # k8s/base: its pods are scraped by a PodMonitor, so each series carries the pod's
                    # rollouts-pod-template-hash and the release analysis can tell canary from stable.
                    "ruleSelectorNilUsesHelmValues": False,
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "probeSelectorNilUsesHelmValues": False,
                    "scrapeInterval": "10s",
                    "evaluationInterval": "10s",
                    "retention": "35d",  # the 30-day SLO window plus margin (monitoring/config.yaml)
                    "storageSpec": {
                        "volumeClaimTemplate": {
                            "spec": {
                                "storageClassName": STORAGE_CLASS,  # the EBS CSI driver's (cluster.py)
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
