"""Kubernetes manifests: both overlays build, validate against the Kubernetes schema of the version we
target, carry the production properties the app relies on, and the PrometheusRule is monitoring/'s rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chatwizard.core.settings import APP_PORT, METRICS_PORT
from monitoring.generate import PROMETHEUS_RULE, prometheus_rule, render

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.33.0"  # the EKS version infra/ deploys
GUNICORN_GRACEFUL_TIMEOUT_S = 25


def build(overlay: str) -> dict[tuple[str, str], dict]:
    out = subprocess.run([BIN / "kubectl", "kustomize", ROOT / "k8s" / "overlays" / overlay],
                         capture_output=True, text=True, check=True).stdout
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out)}


@pytest.fixture(scope="module", params=["staging", "production"])
def manifests(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    built = build(request.param)
    path = tmp_path_factory.mktemp(request.param) / "all.yaml"
    path.write_text(yaml.safe_dump_all(built.values()))
    result = subprocess.run([BIN / "kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, path],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return built


def container(manifests: dict, name: str = "chatwizard") -> dict:
    return manifests[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]


def test_app_pods_are_hardened(manifests):
    pod = manifests[("Deployment", "chatwizard")]["spec"]["template"]["spec"]
    app = container(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert app["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                      "capabilities": {"drop": ["ALL"]}}
    assert app["resources"]["limits"]["memory"] and app["resources"]["requests"]["cpu"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_probes_ports_and_graceful_drain(manifests):
    pod = manifests[("Deployment", "chatwizard")]["spec"]["template"]["spec"]
    app = container(manifests)
    assert {p["name"]: p["containerPort"] for p in app["ports"]} == {"http": APP_PORT, "metrics": METRICS_PORT}
    assert app["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + GUNICORN_GRACEFUL_TIMEOUT_S


def test_migrations_run_in_the_job_only(manifests):
    """Once per release, not again in every pod: Pulumi awaits the Job before rolling the Deployment."""
    pod = manifests[("Deployment", "chatwizard")]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert manifests[("Job", "chatwizard-migrate")]["spec"]["template"]["spec"]["containers"][0]["command"] == \
        ["chatwizard", "migrate"]


def test_only_migrations_get_the_schema_owners_credentials(manifests):
    """Everything else logs in as the app's own login, which cannot rewrite the audit trail."""
    def secrets(container: dict) -> list[str]:
        return [source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source]

    pod = manifests[("Deployment", "chatwizard")]["spec"]["template"]["spec"]
    migrate_job = manifests[("Job", "chatwizard-migrate")]["spec"]["template"]["spec"]["containers"][0]
    retention = manifests[("CronJob", "chatwizard-retention")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert secrets(migrate_job) == ["chatwizard-secrets", "chatwizard-migrate-secrets"]  # the later wins
    for container in (*pod["containers"], *retention["containers"]):
        assert "chatwizard-migrate-secrets" not in secrets(container)


def test_retention_runs_daily_and_may_reach_the_database(manifests):
    cron = manifests[("CronJob", "chatwizard-retention")]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == \
        ["chatwizard", "retention"]
    jobs = manifests[("NetworkPolicy", "chatwizard-retention")]["spec"]
    assert jobs["egress"][0]["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "pgbouncer"}
    assert jobs["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "chatwizard-retention"}


def test_autoscaling_and_disruption_budget(manifests):
    hpa = manifests[("HorizontalPodAutoscaler", "chatwizard")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert hpa["spec"]["minReplicas"] >= manifests[("PodDisruptionBudget", "chatwizard")]["spec"]["minAvailable"] + 1


def test_network_is_default_deny_with_explicit_allows(manifests):
    deny = manifests[("NetworkPolicy", "default-deny")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    app = manifests[("NetworkPolicy", "chatwizard-app")]["spec"]
    assert {p["port"] for rule in app["ingress"] for p in rule["ports"]} == {APP_PORT, METRICS_PORT}


def test_pgbouncer_pools_transactions_and_the_app_skips_prepared_statements(manifests):
    ini = manifests[("ConfigMap", "pgbouncer-config")]["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini and "server_tls_sslmode = verify-full" in ini
    assert "client_tls_sslmode = require" in ini  # the app's settings demand verify-full in production
    assert manifests[("ConfigMap", "chatwizard-config")]["data"]["CHATWIZARD_DB_STATEMENT_CACHE_SIZE"] == "0"


def test_prometheus_rule_is_the_monitoring_rules(manifests):
    rules_on_disk = [g for path in sorted((ROOT / "monitoring" / "rules").glob("*.yml"))
                     for g in yaml.safe_load(path.read_text())["groups"]]
    in_cluster = manifests[("PrometheusRule", "chatwizard")]["spec"]["groups"]
    assert sorted(in_cluster, key=lambda g: g["name"]) == sorted(rules_on_disk, key=lambda g: g["name"])
    assert PROMETHEUS_RULE.read_text() == render(prometheus_rule()), "run python -m monitoring.generate"


def test_overlays_differ_only_where_environments_do():
    staging, production = build("staging"), build("production")
    assert staging.keys() == production.keys()
    assert production[("HorizontalPodAutoscaler", "chatwizard")]["spec"]["minReplicas"] == 3
    assert staging[("ConfigMap", "chatwizard-config")]["data"]["CHATWIZARD_ENVIRONMENT"] == "staging"
    assert production[("ConfigMap", "chatwizard-config")]["data"]["CHATWIZARD_ENVIRONMENT"] == "production"


def test_overlays_read_the_facts():
    """Namespace, ports and generated parts come from infra/facts.yaml, which Pulumi reads too."""
    from infra.facts import generated_files
    from infra.facts import load as facts

    assert facts().ports["app"] == APP_PORT and facts().ports["metrics"] == METRICS_PORT
    for overlay in ("staging", "production"):
        built = build(overlay)
        assert {m["metadata"].get("namespace") for m in built.values() if m["kind"] != "Namespace"} == \
            {facts().namespaces["app"]}
        for path, text in generated_files(overlay).items():
            assert path.read_text() == text, f"{path} is stale: run python -m infra.facts"
        # Sign-in mails link to the host the ingress serves, over https (Secure cookies need it).
        config = built[("ConfigMap", "chatwizard-config")]["data"]
        assert config["CHATWIZARD_PUBLIC_URL"] == f"https://{facts().environments[overlay].api_hostname}"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    text = (ROOT / "app" / "Dockerfile").read_text()
    bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert len(bases) == 2 and all(":" in b and not b.endswith(":latest") for b in bases)
    assert "USER 10001" in text and "HEALTHCHECK" in text and 'CMD ["chatwizard", "serve"]' in text
    assert "COPY loadtest" not in text  # the image carries no load-test tools (tests/app/test_production_wheel.py)
    assert ".venv" in (ROOT / ".dockerignore").read_text()


def test_third_party_images_are_pinned_by_digest(manifests):
    """A tag can be moved or deleted upstream (Bitnami's were); a digest names the bytes we tested."""
    from infra.components.workload import pod_containers

    images = {c["image"] for m in manifests.values() for c in pod_containers(m)}
    app = {i for i in images if i.split("@")[0].split(":")[0].endswith("/chatwizard")}
    assert app and all("@sha256:" in image for image in images - app), images - app



# --- the canary release (Argo Rollouts) --------------------------------------------------------------

HASH_LABEL = "rollouts-pod-template-hash"


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions with In) applied to ``labels``."""
    expressions = selector.get("matchExpressions", [])
    assert all(e["operator"] == "In" for e in expressions)
    return selector.get("matchLabels", {}).items() <= labels.items() and all(
        labels.get(e["key"]) in e["values"] for e in expressions
    )


def test_the_rollout_runs_the_app_and_names_what_exists(manifests):
    rollout = manifests[("Rollout", "chatwizard")]["spec"]
    canary = rollout["strategy"]["canary"]
    ref = rollout["workloadRef"]
    deployment = manifests[(ref["kind"], ref["name"])]
    # Argo Rollouts' documented way to reference a Deployment: the Deployment at zero replicas, the Rollout
    # runs the pods; the HPA scales the Rollout, and neither puts a count back over the autoscaler's.
    assert deployment["spec"]["replicas"] == 0 and "replicas" not in rollout
    hpa = manifests[("HorizontalPodAutoscaler", "chatwizard")]["spec"]["scaleTargetRef"]
    assert hpa == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "chatwizard"}
    assert ("Service", canary["stableService"]) in manifests and ("Service", canary["canaryService"]) in manifests
    ingress = manifests[("Ingress", canary["trafficRouting"]["nginx"]["stableIngress"])]
    backends = {path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert backends == {canary["stableService"]}  # Argo's nginx routing copies this Ingress for the canary
    given = {arg["name"] for arg in canary["analysis"]["args"]}
    for template in canary["analysis"]["templates"]:
        spec = manifests[("AnalysisTemplate", template["templateName"])]["spec"]
        assert {arg["name"] for arg in spec["args"] if "value" not in arg} <= given


def test_canary_pods_are_treated_like_stable_ones(manifests):
    """The Rollout's pods are the Deployment's template plus Argo's hash label: the Services, the PDB,
    the PodMonitor and the NetworkPolicies select them, and the monitor keeps the hash for the analysis."""
    template = manifests[("Deployment", "chatwizard")]["spec"]["template"]["metadata"]["labels"]
    pods = {**template, HASH_LABEL: "6d4b9c7f8"}
    for kind, name in (("Service", "chatwizard"), ("Service", "chatwizard-canary")):
        assert selects({"matchLabels": manifests[(kind, name)]["spec"]["selector"]}, pods), name
    for kind, name in (("PodDisruptionBudget", "chatwizard"), ("PodMonitor", "chatwizard")):
        assert selects(manifests[(kind, name)]["spec"]["selector"], pods), name
    assert HASH_LABEL in manifests[("PodMonitor", "chatwizard")]["spec"]["podTargetLabels"]
    app = manifests[("NetworkPolicy", "chatwizard-app")]["spec"]
    assert selects(app["podSelector"], pods)
    pgbouncer = manifests[("NetworkPolicy", "pgbouncer")]["spec"]["ingress"]
    assert any(selects(peer["podSelector"], pods) for rule in pgbouncer for peer in rule["from"])
    ports = {p["name"] for c in manifests[("Deployment", "chatwizard")]["spec"]["template"]["spec"]["containers"]
             for p in c["ports"]}
    assert {e["port"] for e in manifests[("PodMonitor", "chatwizard")]["spec"]["podMetricsEndpoints"]} <= ports
