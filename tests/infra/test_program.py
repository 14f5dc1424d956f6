"""What `pulumi up` would create, per stack: the properties platform engineers rely on."""

from __future__ import annotations

import hashlib
import json

import yaml

from infra.components.edge import CLOUDFLARE_MANAGED_RULESET, OWASP_CORE_RULESET
from infra.facts import load as facts
from infra.policy.policies import policies
from infra.ports import PGBOUNCER_PORT
from monitoring.generate import prometheus_rule

from .conftest import ROOT, Stack, declared

RDS = "aws:rds/instance:Instance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
RULESET = "cloudflare:index/ruleset:Ruleset"
SECRET = "kubernetes:core/v1:Secret"


def stack_file(stack: Stack) -> dict:
    return {
        k.removeprefix("chatwizard:"): v
        for k, v in yaml.safe_load((ROOT / f"Pulumi.{stack.name}.yaml").read_text())["config"].items()
    }


def test_every_resource_belongs_to_a_component(stack: Stack):
    components = {r["type"] for r in stack.resources if r["type"].startswith("chatwizard:infra:")}
    assert components == {
        f"chatwizard:infra:{c}"
        for c in (
            "Network",
            "Cluster",
            "Database",
            "Cache",
            "Edge",
            "Workload",
            "Monitoring",
            "Backups",
            "Notifications",
            "Logging",
            "DeployRunner",
            "Mail",
        )
    }
    by_urn = {r["urn"]: r for r in stack.resources}

    def owner(resource: dict) -> str | None:
        while resource["parent"] in by_urn:
            resource = by_urn[resource["parent"]]
            if resource["type"].startswith("chatwizard:infra:"):
                return resource["type"]
        return None

    loose = [
        r["urn"]
        for r in stack.resources
        if not r["type"].startswith("chatwizard:infra:")
        and owner(r) is None
        and r["type"] != "kubernetes:core/v1:Service"
    ]  # the ingress, read only
    assert loose == []


def test_database_primary_and_replicas(stack: Stack):
    production = stack.name == "production"
    instances = stack.of_type(RDS)
    primary = stack.inputs(RDS, f"chatwizard-{stack.name}-primary")
    replicas = [r["inputs"] for r in instances if r["inputs"].get("replicateSourceDb")]
    assert len(replicas) == stack_file(stack)["dbReadReplicas"] == (2 if production else 1)
    assert primary["multiAz"] is production
    assert primary["deletionProtection"] is production and primary["skipFinalSnapshot"] is not production
    assert primary["backupRetentionPeriod"] == stack_file(stack)["dbBackupRetentionDays"]
    assert primary["maxAllocatedStorage"] > primary["allocatedStorage"]  # storage autoscaling
    for instance in [primary, *replicas]:
        assert instance["storageEncrypted"] and instance["kmsKeyId"]
        assert instance["performanceInsightsEnabled"] and instance["publiclyAccessible"] is False
        assert instance["monitoringInterval"] > 0
    alarms = stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert sorted(a["inputs"]["metricName"] for a in alarms) == ["ReplicaLag"] * len(replicas)
    parameters = {
        p["name"]: p["value"] for p in stack.inputs("aws:rds/parameterGroup:ParameterGroup")["parameters"]
    }
    assert parameters["rds.force_ssl"] == "1"


def test_redis_failover_and_tls(stack: Stack):
    redis = stack.inputs(REDIS)
    production = stack.name == "production"
    assert redis["automaticFailoverEnabled"] is production and redis["multiAzEnabled"] is production
    assert redis["transitEncryptionEnabled"] and redis["atRestEncryptionEnabled"] and redis["kmsKeyId"]
    assert redis["authToken"] == {"secret": "test-secret-chatwizard-redisAuthToken-0123456789"}
    assert redis["snapshotRetentionLimit"] >= 1


def environment(stack: Stack):
    return facts().environments[stack.name]


def test_cloudflare_tls_waf_and_cache_rules(production: Stack):
    """The zone's owner (production) declares them, for every environment's hostname."""
    stack = production
    settings = {s["inputs"]["settingId"]: s["inputs"]["value"] for s in stack.of_type(ZONE_SETTING)}
    assert settings["ssl"] == "strict" and settings["min_tls_version"] == "1.2"
    assert settings["always_use_https"] == "on" and settings["http2"] == settings["http3"] == "on"
    assert settings["security_header"]["strict_transport_security"]["enabled"] is True
    rulesets = {r["inputs"]["phase"]: r["inputs"]["rules"] for r in stack.of_type(RULESET)}
    waf = {rule["actionParameters"]["id"] for rule in rulesets["http_request_firewall_managed"]}
    assert waf == {CLOUDFLARE_MANAGED_RULESET, OWASP_CORE_RULESET}
    for limit, env in zip(rulesets["http_ratelimit"], facts().environments.values(), strict=True):
        assert limit["ratelimit"]["requestsPerPeriod"] == env.edge_rate_limit_per_minute
        assert '"/v1/"' in limit["expression"] and f'"{env.api_hostname}"' in limit["expression"]
    static, rest = rulesets["http_request_cache_settings"]  # what they cache: test_invariants
    assert static["actionParameters"]["cache"] is True and '"/static/"' in static["expression"]
    assert rest["actionParameters"] == {"cache": False}  # last rule wins


def test_each_stack_owns_its_dns_records(stack: Stack):
    records = stack.of_type("cloudflare:index/dnsRecord:DnsRecord")
    assert {r["inputs"]["name"] for r in records if r["inputs"].get("proxied")} == {
        environment(stack).api_hostname,
        environment(stack).dashboard_hostname,
    }
    other = declared("production" if stack.name == "staging" else "staging")
    others = {r["inputs"]["name"] for r in other.of_type("cloudflare:index/dnsRecord:DnsRecord")}
    assert not {r["inputs"]["name"] for r in records} & others  # one zone: a shared name would flip-flop


def test_network_spans_three_zones_and_keeps_data_private(stack: Stack):
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    assert len({s["inputs"]["availabilityZone"] for s in subnets}) == 3
    nats = stack.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == (3 if stack.name == "production" else 1)
    groups = {
        g["name"].rsplit("-", 1)[-1]: g["inputs"]
        for g in stack.of_type("aws:ec2/securityGroup:SecurityGroup")
    }
    rules = stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    for store, port in (("database", 5432), ("cache", 6379)):
        assert not groups[store].get("ingress")  # only the rules below, each from one security group
        (rule,) = [r["inputs"] for r in rules if r["inputs"]["securityGroupId"].endswith(f"-{store}-id")]
        assert rule["fromPort"] == port and rule["referencedSecurityGroupId"] and not rule.get("cidrIpv4")
    assert groups["edge"]["ingress"][0]["cidrBlocks"] != ["0.0.0.0/0"]  # Cloudflare's ranges only


def test_cluster_private_and_encrypted(stack: Stack):
    cluster = stack.inputs("aws:eks/cluster:Cluster")
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    releases = {r["inputs"]["name"] for r in stack.of_type("kubernetes:helm.sh/v3:Release")}
    assert {"metrics-server", "cluster-autoscaler", "kube-prometheus-stack", "ingress-nginx",
            "aws-load-balancer-controller", "prometheus-adapter", "argo-rollouts"} <= releases


def app_images(stack: Stack) -> set[str]:
    """The images of the app's pods: the Rollout's template (the Deployment's), migrations, retention."""
    pods = [
        r["inputs"]["spec"]["template"]["spec"] for r in stack.of_type("kubernetes:apps/v1:Deployment")
        if r["inputs"]["metadata"]["name"] == "chatwizard"
    ] + [stack.inputs("kubernetes:batch/v1:Job")["spec"]["template"]["spec"]] + [
        stack.inputs("kubernetes:batch/v1:CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    ]
    assert all("initContainers" not in pod for pod in pods)
    return {c["image"] for pod in pods for c in pod["containers"]}


def test_the_release_pipelines_digest_is_the_image_that_runs():
    image = f"ghcr.io/chatwizard/chatwizard@sha256:{'0123456789abcdef' * 4}"
    stack = declared("production", "--set", f"chatwizard:appImageDigest={image}")
    assert app_images(stack) == {image} == {stack.outputs["app_image"]}


def test_workload_comes_from_k8s_with_the_configured_image(stack: Stack):
    image = f"{stack_file(stack)['appImageRepository']}:{stack_file(stack)['appImageTag']}"
    assert app_images(stack) == {image}  # before the pipeline's first release: the tag
    assert stack.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    config = next(
        c["inputs"]
        for c in stack.of_type("kubernetes:core/v1:ConfigMap")
        if c["inputs"]["metadata"]["name"] == "pgbouncer-config"
    )["data"]["pgbouncer.ini"]
    assert stack.outputs["database_primary_endpoint"] in config
    assert all(replica in config for replica in stack.outputs["database_replica_endpoints"])
    secrets = {s["inputs"]["metadata"]["name"]: s["inputs"] for s in stack.of_type(SECRET)}
    assert {"chatwizard-secrets", "pgbouncer-userlist", "pgbouncer-tls", "chatwizard-tls"} <= secrets.keys()
    assert all(set(secret["stringData"]) == {"secret"} for secret in secrets.values())  # encrypted in state
    app_env = secrets["chatwizard-secrets"]["stringData"]["secret"]
    assert f"pgbouncer.chatwizard.svc:{PGBOUNCER_PORT}" in app_env["CHATWIZARD_DATABASE_URL"]
    assert "sslmode=verify-full" in app_env["CHATWIZARD_DATABASE_URL"]
    assert app_env["CHATWIZARD_REDIS_URL"].startswith("rediss://")
    # The app logs in as its own login; only migrations hold the owner's password, and set the login's.
    owner, app_login = "test-secret-chatwizard-dbPassword-0123456789", "test-secret-chatwizard-appDbPassword-0123456789"
    assert app_env["CHATWIZARD_DATABASE_URL"].startswith(f"postgresql://chatwizard_api:{app_login}@")
    assert app_env["CHATWIZARD_REPLICA_URL"].startswith(f"postgresql://chatwizard_api:{app_login}@")
    assert owner not in str(app_env)
    migrate_env = secrets["chatwizard-migrate-secrets"]["stringData"]["secret"]
    primary = stack.outputs["database_primary_endpoint"]  # migrations skip PgBouncer: their lock holds
    assert migrate_env["CHATWIZARD_DATABASE_URL"].startswith(f"postgresql://chatwizard:{owner}@{primary}:5432/")
    assert "sslmode=verify-full" in migrate_env["CHATWIZARD_DATABASE_URL"]
    assert migrate_env["CHATWIZARD_APP_DB_LOGIN"] == "chatwizard_api"
    assert migrate_env["CHATWIZARD_APP_DB_PASSWORD"] == app_login
    userlist = secrets["pgbouncer-userlist"]["stringData"]["secret"]["userlist.txt"]
    assert userlist == f'"chatwizard" "{owner}"\n"chatwizard_api" "{app_login}"\n'
    # Pods read these only at start, so each Deployment's pods carry a digest of what it reads: a new
    # password or field key rolls them on `pulumi up`.
    deployments = {d["inputs"]["metadata"]["name"]: d["inputs"] for d in stack.of_type("kubernetes:apps/v1:Deployment")}
    assert pod_annotation(deployments["pgbouncer"]) == secret_digest(userlist)
    assert pod_annotation(deployments["chatwizard"]) == secret_digest(app_env)
    assert pod_annotation(stack.inputs("kubernetes:batch/v1:Job")) == secret_digest(migrate_env)


def pod_annotation(deployment: dict) -> str:
    return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]


def secret_digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def test_ingress_host_matches_the_stack(stack: Stack):
    ingress = stack.inputs("kubernetes:networking.k8s.io/v1:Ingress")
    assert ingress["spec"]["rules"][0]["host"] == environment(stack).api_hostname


def test_monitoring_loads_rules_dashboards_and_alertmanager_from_monitoring(stack: Stack):
    rule = stack.inputs("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert rule["spec"] == prometheus_rule()["spec"]
    dashboards = [
        c
        for c in stack.of_type("kubernetes:core/v1:ConfigMap")
        if (c["inputs"]["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == len(list((ROOT / "monitoring" / "dashboards").glob("*.json")))
    values = next(
        r["inputs"]["values"]
        for r in stack.of_type("kubernetes:helm.sh/v3:Release")
        if r["inputs"]["name"] == "kube-prometheus-stack"
    )
    assert values["alertmanager"]["config"] == yaml.safe_load(
        (ROOT / "monitoring" / "alertmanager" / "alertmanager.yml").read_text()
    )


def test_backups_bucket(stack: Stack):
    access = stack.inputs("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        access[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    assert (
        stack.inputs("aws:s3/bucketVersioning:BucketVersioning")["versioningConfiguration"]["status"]
        == "Enabled"
    )
    locks = stack.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert len(locks) == (1 if stack.name == "production" else 0)


def test_outputs(stack: Stack):
    assert stack.outputs["api_url"] == f"https://{environment(stack).api_hostname}"
    assert set(stack.outputs) >= {
        "dashboard_url",
        "database_primary_endpoint",
        "database_replica_endpoints",
        "redis_endpoint",
    }


def test_the_policy_pack_declares_every_policy():
    assert len(policies()) == 9
