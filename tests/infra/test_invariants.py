"""Cross-resource invariants of what `pulumi up` would create: not what each resource declares, but whether
the resources fit together. Who is attached to what, who can reach whom, which ranges and namespaces
exist, what each custom resource waits for, which Cloudflare rules each stack owns, which key policies let
which publishers in. Each test names the defect it keeps out; docs/decisions.md lists the mutation that
shows each one failing."""

from __future__ import annotations

import json
import re
from ipaddress import ip_network
from urllib.parse import parse_qs, urlparse

import pytest

from chatwizard.core.edge import STATIC_CACHE_CONTROL, STATIC_MAX_AGE_S
from infra.facts import load as facts

from .conftest import Stack, declared

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CRD_GROUP = "monitoring.coreos.com"  # defined by kube-prometheus-stack
# Each custom resource group the program uses: the chart whose release installs its CRDs, and the kinds
# the estate declares of it.
CRD_CHARTS = {
    CRD_GROUP: ("kube-prometheus-stack", {"PodMonitor", "PrometheusRule", "Probe"}),
    "argoproj.io": ("argo-rollouts", {"Rollout", "AnalysisTemplate"}),
}
EBS_PROVISIONER = "ebs.csi.aws.com"


def resource_id(resource: dict) -> str:
    return f"{resource['name']}-id"  # what the mock runtime answers for every created resource


def release(stack: Stack, name: str) -> dict:
    return next(r for r in stack.of_type(RELEASE) if r["inputs"]["name"] == name)


def k8s_object(stack: Stack, kind: str, name: str) -> dict:
    found = [r for r in stack.resources if r["type"].endswith(f":{kind}") and
             r["inputs"].get("metadata", {}).get("name") == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def waits_for(stack: Stack, resource: dict) -> set[str]:
    """Every URN `up` creates before this resource: its dependencies, transitively."""
    by_urn = {r["urn"]: r for r in stack.resources}
    seen: set[str] = set()
    todo = list(resource["dependencies"])
    while todo:
        urn = todo.pop()
        if urn not in seen and urn in by_urn:
            seen.add(urn)
            todo.extend(by_urn[urn]["dependencies"])
    return seen


def environment(stack: Stack):
    return facts().environments[stack.name]


# --- 1. Pods reach their data -----------------------------------------------------------------------


def node_security_groups(stack: Stack) -> set[str]:
    """The groups on the managed nodes' (and so the pods') interfaces. Without a launch template EKS puts
    only its own cluster security group there; vpc_config.security_group_ids go to the control plane."""
    cluster = stack.one("aws:eks/cluster:Cluster")
    groups = set()
    for node_group in stack.of_type("aws:eks/nodeGroup:NodeGroup"):
        template = node_group["inputs"].get("launchTemplate")
        groups |= set(template["vpcSecurityGroupIds"]) if template else {f"{cluster['name']}-cluster-sg-id"}
    return groups


def admitted_sources(stack: Stack, group_id: str, port: int) -> set[str]:
    groups = {resource_id(g): g for g in stack.of_type(SG)}
    sources = {
        source
        for rule in groups[group_id]["inputs"].get("ingress") or []
        if rule["fromPort"] <= port <= rule["toPort"]
        for source in rule.get("securityGroups") or []
    }
    sources |= {
        rule["inputs"]["referencedSecurityGroupId"]
        for rule in stack.of_type(SG_RULE)
        if rule["inputs"]["securityGroupId"] == group_id and rule["inputs"]["fromPort"] <= port <= rule["inputs"]["toPort"]
    }
    return sources


def test_the_data_stores_admit_a_group_the_nodes_carry(stack: Stack):
    nodes = node_security_groups(stack)
    stores = [
        (r["name"], r["inputs"]["vpcSecurityGroupIds"], r["inputs"]["port"]) for r in stack.of_type("aws:rds/instance:Instance")
    ] + [
        (r["name"], r["inputs"]["securityGroupIds"], r["inputs"]["port"])
        for r in stack.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
    ]
    for name, groups, port in stores:
        admitted = set().union(*(admitted_sources(stack, g, int(port)) for g in groups))
        assert admitted & nodes, f"{name}:{int(port)} admits {admitted}, the nodes carry {nodes}"


def mounted_path(pod_spec: dict, container: dict, path: str) -> dict:
    """The volume a file path is mounted from."""
    mount = next(m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/"))
    return next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])


def assert_rds_ca(stack: Stack, volume: dict) -> None:
    assert "configMap" in volume, f"{volume} is not the RDS CA bundle"
    bundle = k8s_object(stack, "ConfigMap", volume["configMap"]["name"])["inputs"]["data"]
    assert all("BEGIN CERTIFICATE" in text for text in bundle.values()) and bundle


def test_pgbouncer_and_migrations_verify_rds_against_its_ca_bundle(stack: Stack):
    ini = k8s_object(stack, "ConfigMap", "pgbouncer-config")["inputs"]["data"]["pgbouncer.ini"]
    settings = dict(line.split(" = ", 1) for line in ini.splitlines() if " = " in line)
    assert settings["server_tls_sslmode"] == "verify-full"
    pod = k8s_object(stack, "Deployment", "pgbouncer")["inputs"]["spec"]["template"]["spec"]
    assert_rds_ca(stack, mounted_path(pod, pod["containers"][0], settings["server_tls_ca_file"]))
    secrets = {s["inputs"]["metadata"]["name"]: s["inputs"]["stringData"]["secret"]
               for s in stack.of_type("kubernetes:core/v1:Secret")}
    url = urlparse(secrets["chatwizard-migrate-secrets"]["CHATWIZARD_DATABASE_URL"])
    job = k8s_object(stack, "Job", "chatwizard-migrate")["inputs"]["spec"]["template"]["spec"]
    assert parse_qs(url.query)["sslmode"] == ["verify-full"]
    assert_rds_ca(stack, mounted_path(job, job["containers"][0], parse_qs(url.query)["sslrootcert"][0]))


# --- 2. NetworkPolicies: real ranges, real namespaces, enforced -------------------------------------


def policies(stack: Stack) -> dict[str, dict]:
    return {p["inputs"]["metadata"]["name"]: p["inputs"]["spec"] for p in stack.of_type(NETWORK_POLICY)}


def egress_blocks(spec: dict, port: int) -> list[str]:
    return [
        peer["ipBlock"]["cidr"]
        for rule in spec.get("egress", [])
        if any(p["port"] == port for p in rule.get("ports", []))
        for peer in rule["to"]
        if "ipBlock" in peer
    ]


def test_egress_to_the_data_stores_covers_their_subnets_and_stays_in_the_vpc(stack: Stack):
    vpc = ip_network(stack.inputs("aws:ec2/vpc:Vpc")["cidrBlock"])
    subnets = {resource_id(s): ip_network(s["inputs"]["cidrBlock"]) for s in stack.of_type("aws:ec2/subnet:Subnet")}
    data_subnets = {
        subnets[i] for kind in ("aws:rds/subnetGroup:SubnetGroup", "aws:elasticache/subnetGroup:SubnetGroup")
        for group in stack.of_type(kind) for i in group["inputs"]["subnetIds"]
    }
    by_name = policies(stack)
    for name, port in (("pgbouncer", 5432), ("chatwizard-migrate", 5432), ("chatwizard-app", 6379)):
        blocks = [ip_network(b) for b in egress_blocks(by_name[name], port)]
        assert blocks and all(b.subnet_of(vpc) for b in blocks), f"{name}:{port} egress {blocks} outside {vpc}"
        for subnet in data_subnets:
            assert any(subnet.subnet_of(b) for b in blocks), f"{name} cannot reach {subnet} on {port}"


def existing_namespaces(stack: Stack) -> set[str]:
    made = {n["inputs"]["metadata"]["name"] for n in stack.of_type("kubernetes:core/v1:Namespace")}
    return made | {r["inputs"]["namespace"] for r in stack.of_type(RELEASE)} | {facts().namespaces["system"]}


def test_policies_admit_only_namespaces_that_exist_and_the_ingress_controller_is_in_one(stack: Stack):
    namespaces = existing_namespaces(stack)
    selected = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for spec in policies(stack).values()
        for rule in spec.get("ingress", []) + spec.get("egress", [])
        for peer in rule.get("from", []) + rule.get("to", [])
        if "namespaceSelector" in peer
    }
    assert selected <= namespaces, f"policies select {selected - namespaces}, which nothing creates"
    app_ingress = policies(stack)["chatwizard-app"]["ingress"]
    controller = release(stack, "ingress-nginx")["inputs"]["namespace"]
    assert any(
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == controller
        for rule in app_ingress for peer in rule["from"]
    ), f"the ingress controller runs in {controller}, which the app's policy does not admit"


def test_network_policies_are_enforced(stack: Stack):
    """The VPC CNI ignores NetworkPolicies unless its add-on turns enforcement on."""
    cni = [a["inputs"] for a in stack.of_type("aws:eks/addon:Addon") if a["inputs"]["addonName"] == "vpc-cni"]
    assert len(cni) == 1 and json.loads(cni[0].get("configurationValues") or "{}").get("enableNetworkPolicy") == "true"


# --- 3. The first `up` can finish ---------------------------------------------------------------------


def test_the_private_api_is_reachable_from_inside_the_vpc(stack: Stack):
    vpc_config = stack.inputs("aws:eks/cluster:Cluster")["vpcConfig"]
    if vpc_config["endpointPublicAccess"]:
        return
    vpc = ip_network(stack.inputs("aws:ec2/vpc:Vpc")["cidrBlock"])
    groups = {resource_id(g): g["inputs"] for g in stack.of_type(SG)}
    admitted = [
        ip_network(cidr)
        for group in vpc_config.get("securityGroupIds") or []
        for rule in groups[group].get("ingress") or []
        if rule["fromPort"] <= 443 <= rule["toPort"]
        for cidr in rule.get("cidrBlocks") or []
    ]
    assert any(vpc.subnet_of(cidr) for cidr in admitted), "nothing in the VPC (the deploy runner) reaches the API"


@pytest.mark.parametrize("group", CRD_CHARTS)
def test_custom_resources_wait_for_the_chart_that_defines_them(stack: Stack, group: str):
    chart, kinds = CRD_CHARTS[group]
    defining = release(stack, chart)["urn"]
    custom = [r for r in stack.resources if r["type"].startswith(f"kubernetes:{group}/")]
    assert {r["type"].rsplit(":", 1)[1] for r in custom} >= kinds
    for resource in custom:
        assert defining in waits_for(stack, resource), f"{resource['urn']} may be created before its CRD"


def test_ingresses_wait_for_the_ingress_controller(stack: Stack):
    controller = release(stack, "ingress-nginx")
    assert release(stack, "aws-load-balancer-controller")["urn"] in waits_for(stack, controller)
    for ingress in stack.of_type("kubernetes:networking.k8s.io/v1:Ingress"):
        assert controller["urn"] in waits_for(stack, ingress)


def test_volumes_have_a_storage_class_with_an_installed_driver(stack: Stack):
    values = release(stack, "kube-prometheus-stack")["inputs"]["values"]
    claim = values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    storage_class = k8s_object(stack, "StorageClass", claim["storageClassName"])["inputs"]
    assert storage_class["provisioner"] == EBS_PROVISIONER
    addons = {a["inputs"]["addonName"] for a in stack.of_type("aws:eks/addon:Addon")}
    assert "aws-ebs-csi-driver" in addons


def test_every_hpa_metric_is_served(stack: Stack):
    adapter = release(stack, "prometheus-adapter")
    served = {rule["name"]["as"] for rule in adapter["inputs"]["values"]["rules"]["custom"]}
    for hpa in stack.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"):
        for metric in hpa["inputs"]["spec"]["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in served
        assert adapter["urn"] in waits_for(stack, hpa)


# --- 4. Cloudflare: one owner per zone-wide object ----------------------------------------------------


def test_each_zone_phase_and_setting_has_exactly_one_owner():
    stacks = [declared(name) for name in facts().environments]
    for kind, key in (("cloudflare:index/ruleset:Ruleset", "phase"), ("cloudflare:index/zoneSetting:ZoneSetting", "settingId")):
        owners: dict[tuple[str, str], list[str]] = {}
        for stack in stacks:
            for r in stack.of_type(kind):
                owners.setdefault((r["inputs"]["zoneId"], r["inputs"][key]), []).append(stack.name)
        assert owners, kind
        assert all(len(names) == 1 for names in owners.values()), {k: v for k, v in owners.items() if len(v) > 1}
    owner = declared(facts().cloudflare_zone_owner)
    rules = [rule for r in owner.of_type("cloudflare:index/ruleset:Ruleset") for rule in r["inputs"]["rules"]]
    for env in facts().environments.values():
        for phase in ("http_ratelimit", "http_request_cache_settings"):
            ruleset = next(r for r in owner.of_type("cloudflare:index/ruleset:Ruleset") if r["inputs"]["phase"] == phase)
            assert any(f'"{env.api_hostname}"' in rule["expression"] for rule in ruleset["inputs"]["rules"]), (env, phase)
    assert rules


def edge_caches(rules: list[dict], host: str, path: str) -> dict | None:
    """What Cloudflare does with a request: the last matching rule's settings win (None: no rule matches).
    The rules' expressions are read as Python, which their few operators translate to one for one."""
    settings = None
    for rule in rules:
        expression = re.sub(r'starts_with\(http\.request\.uri\.path, ("[^"]*")\)', r"path.startswith(\1)",
                            rule["expression"])
        expression = re.sub(r'\{("[^}]*")\}', lambda m: "{" + m.group(1).replace('" "', '", "') + "}", expression)
        expression = expression.replace("http.host", "host").replace(" eq ", " == ")
        if eval(expression, {}, {"host": host, "path": path}):  # our own rules, in a test
            settings = rule["actionParameters"]
    return settings


def test_the_edge_caches_the_assets_and_never_pages_or_the_api():
    """Fingerprinted assets are cached for as long as the origin says (a year, immutable); pages, the API and
    the calendar feeds never, on every environment's hostname."""
    owner = declared(facts().cloudflare_zone_owner)
    (cache,) = [r for r in owner.of_type("cloudflare:index/ruleset:Ruleset")
                if r["inputs"]["phase"] == "http_request_cache_settings"]
    rules = cache["inputs"]["rules"]
    assert STATIC_MAX_AGE_S >= 365 * 86_400 and "immutable" in STATIC_CACHE_CONTROL
    for env in facts().environments.values():
        asset = edge_caches(rules, env.api_hostname, "/static/app.3f9c2a1b.js")
        assert asset is not None and asset["cache"] is True, env
        assert asset["edgeTtl"] == asset["browserTtl"] == {"mode": "respect_origin"}, env
        for path in ("/", "/sign-in", "/chat", "/v1/session", "/v1/chat", "/calendar/feed.ics", "/v1/static/x"):
            assert edge_caches(rules, env.api_hostname, path) == {"cache": False}, (env, path)
    assert edge_caches(rules, "elsewhere.example", "/static/app.3f9c2a1b.js") is None


# --- 5. The origin admits Cloudflare only, and only Cloudflare's word on the client counts -------------


def test_the_origin_admits_only_cloudflare(stack: Stack):
    service = release(stack, "ingress-nginx")["inputs"]["values"]["controller"]["service"]["annotations"]
    prefix = "service.beta.kubernetes.io/aws-load-balancer"
    # Only the AWS Load Balancer Controller honours the security-group annotation, and only for Services
    # handed to it ("external"); the in-tree controller would open the node ports to the world.
    assert service[f"{prefix}-type"] == "external" and release(stack, "aws-load-balancer-controller")
    edge = next(g for g in stack.of_type(SG) if resource_id(g) == service[f"{prefix}-security-groups"])
    (rule,) = edge["inputs"]["ingress"]
    assert set(rule["cidrBlocks"]) == set(facts().cloudflare_ipv4)
    assert set(rule.get("ipv6CidrBlocks") or []) == set(facts().cloudflare_ipv6)


def test_the_client_address_is_believed_only_from_trusted_senders(stack: Stack):
    config = release(stack, "ingress-nginx")["inputs"]["values"]["controller"]["config"]
    if config.get("forwarded-for-header") == "CF-Connecting-IP" or config.get("use-forwarded-headers") == "true":
        trusted = set(config.get("proxy-real-ip-cidr", "0.0.0.0/0").split(","))
        assert trusted == set(facts().cloudflare_ipv4 + facts().cloudflare_ipv6)
    app = k8s_object(stack, "ConfigMap", "chatwizard-config")["inputs"]["data"]
    proxies = [ip_network(c) for c in app["CHATWIZARD_FORWARDED_ALLOW_IPS"].split(",")]
    vpc = ip_network(stack.inputs("aws:ec2/vpc:Vpc")["cidrBlock"])
    private = [ip_network(s["inputs"]["cidrBlock"]) for s in stack.of_type("aws:ec2/subnet:Subnet")
               if "kubernetes.io/role/internal-elb" in s["inputs"]["tags"]]
    assert all(p.subnet_of(vpc) for p in proxies), "the app trusts forwarded headers from outside the VPC"
    assert all(any(s.subnet_of(p) for p in proxies) for s in private), "the ingress pods' subnets are not trusted"


# --- 6. Key policies let the publishers in -------------------------------------------------------------


def test_alarm_topics_keys_let_cloudwatch_publish(stack: Stack):
    topics = {f"arn:aws:mock:us-east-1:123456789012:{t['name']}": t["inputs"] for t in stack.of_type("aws:sns/topic:Topic")}
    keys = {resource_id(k): k["inputs"] for k in stack.of_type("aws:kms/key:Key")}
    alarms = stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarms
    for alarm in alarms:
        for arn in alarm["inputs"]["alarmActions"]:
            key = keys[topics[arn]["kmsMasterKeyId"]]
            statements = json.loads(key.get("policy") or '{"Statement": []}')["Statement"]
            allowed = {
                action
                for s in statements
                if s["Effect"] == "Allow" and "cloudwatch.amazonaws.com" in json.dumps(s.get("Principal", {}))
                for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
            }
            assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed, f"{alarm['name']}: CloudWatch may not use {arn}'s key"


# --- 7. Migrations run once, on the primary, before the pods roll ----------------------------------------


def test_migrations_run_once_directly_on_the_primary_before_the_app(stack: Stack):
    runners = [
        r for r in stack.resources if r["type"] in ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job")
        for c in (r["inputs"]["spec"]["template"]["spec"].get("initContainers", [])
                  + r["inputs"]["spec"]["template"]["spec"]["containers"])
        if c.get("command") == ["chatwizard", "migrate"]
    ]
    assert [r["type"] for r in runners] == ["kubernetes:batch/v1:Job"], "migrations must run in one place"
    secrets = {s["inputs"]["metadata"]["name"]: s["inputs"]["stringData"]["secret"]
               for s in stack.of_type("kubernetes:core/v1:Secret")}
    url = urlparse(secrets["chatwizard-migrate-secrets"]["CHATWIZARD_DATABASE_URL"])
    assert (url.hostname, url.port) == (stack.outputs["database_primary_endpoint"], 5432)
    assert runners[0]["urn"] in waits_for(stack, k8s_object(stack, "Deployment", "chatwizard"))


# --- 8. Production has what on-call is told it has ---------------------------------------------------


OPERATOR_ROLE = "arn:aws:iam::123456789012:role/chatwizard-oncall"


@pytest.fixture(scope="module")
def production_in_operation() -> Stack:
    """Production after the first deployment's later steps: a probe key, an operator's role as an admin."""
    return declared("production", "--set", "chatwizard:probeApiKey=cw_test_probe_key_0123456789",
                    "--set", f'chatwizard:clusterAdminRoleArns=["{OPERATOR_ROLE}"]')


def test_the_deploy_runner_and_configured_roles_may_administer_the_cluster(production_in_operation: Stack):
    """With authentication mode API, only access entries let an identity in: the stack's own deploy runner
    (infra/components/runner.py) and the roles in clusterAdminRoleArns."""
    stack = production_in_operation
    assert stack.inputs("aws:eks/cluster:Cluster")["accessConfig"]["authenticationMode"] == "API"
    runner = stack.one("aws:iam/role:Role", "chatwizard-production-runner")["inputs"]
    entries = [e["inputs"]["principalArn"] for e in stack.of_type("aws:eks/accessEntry:AccessEntry")]
    associations = stack.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert len(entries) == 2 and OPERATOR_ROLE in entries
    assert "ec2.amazonaws.com" in runner["assumeRolePolicy"]  # the other entry: the runner's instance role
    assert sorted(entries) == sorted(a["inputs"]["principalArn"] for a in associations)
    for association in associations:
        assert association["inputs"]["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
        assert association["inputs"]["accessScope"] == {"type": "cluster"}


def test_production_scrapes_what_its_rules_read(production_in_operation: Stack):
    from monitoring.catalog import scraped_by

    stack = production_in_operation
    releases = {r["inputs"]["name"]: r["inputs"]["values"] for r in stack.of_type(RELEASE)}
    for exporter in scraped_by("production"):
        exporter = {"prometheus": "kube-prometheus-stack"}.get(exporter, exporter)
        assert exporter in releases, f"the metric catalog says production runs {exporter}"
        if exporter.endswith(("postgres-exporter", "redis-exporter")):
            assert releases[exporter]["serviceMonitor"]["enabled"] is True
    probes = {p["inputs"]["spec"]["targets"]["staticConfig"]["static"][0]: p["inputs"]["spec"]["module"]
              for p in stack.of_type(f"kubernetes:{CRD_GROUP}/v1:Probe")}
    api = f"https://{environment(stack).api_hostname}"
    assert probes == {f"{api}/healthz": "http_2xx", f"{api}/v1/me": "http_api"}
    modules = releases["blackbox-exporter"]["config"]["modules"]
    assert modules["http_api"]["http"]["authorization"]["type"] == "Bearer"


def test_no_file_under_monitoring_is_left_unread():
    """Grafana is provisioned by kube-prometheus-stack's sidecar and the local estate: no loose files."""
    from infra.components.monitoring import MONITORING

    assert not (MONITORING / "grafana").exists()


# --- 9. One deploy path --------------------------------------------------------------------------------


def test_no_doc_offers_a_second_deploy_path():
    from .conftest import ROOT

    docs = [ROOT / "README.md", ROOT / "infra" / "README.md", *(ROOT / "runbooks").glob("*.md"), *(ROOT / "docs").glob("*.md")]
    offenders = [str(p.relative_to(ROOT)) for p in docs if "kubectl apply -k" in p.read_text()]
    assert offenders == [], "kubectl apply -k would put the overlays' placeholder hosts over what Pulumi set"


def test_overlays_are_generated_from_the_facts(stack: Stack):
    from infra.facts import generated_files

    for path, text in generated_files(stack.name).items():
        assert path.read_text() == text, f"{path} is stale: run python -m infra.facts"
    ingress = stack.inputs("kubernetes:networking.k8s.io/v1:Ingress")
    assert ingress["spec"]["rules"][0]["host"] == environment(stack).api_hostname


# --- 10. The canary release: its controller, its analysis and the series it reads fit together -------

HASH_LABEL = "rollouts-pod-template-hash"  # what Argo Rollouts puts on each pod template's pods
# Which prometheusSpec switch lets Prometheus pick up each kind without the chart's release label.
SELECTOR_SWITCH = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor", "PrometheusRule": "rule",
                   "Probe": "probe"}


def analysis(stack: Stack) -> dict:
    rollout = k8s_object(stack, "Rollout", "chatwizard")["inputs"]["spec"]
    (template,) = rollout["strategy"]["canary"]["analysis"]["templates"]
    return k8s_object(stack, "AnalysisTemplate", template["templateName"])["inputs"]["spec"]


def test_the_analysis_queries_the_prometheus_the_program_installs(stack: Stack):
    """kube-prometheus-stack names Prometheus's Service `<release>-prometheus`, in the release's namespace,
    on port 9090 (the chart's prometheus.service.port)."""
    chart = release(stack, "kube-prometheus-stack")["inputs"]
    installed = f"http://{chart['name']}-prometheus.{chart['namespace']}.svc:9090"
    args = {arg["name"]: arg.get("value") for arg in analysis(stack)["args"]}
    assert args["prometheus-address"] == installed
    adapter = release(stack, "prometheus-adapter")["inputs"]["values"]["prometheus"]
    assert f"{adapter['url']}:{int(adapter['port'])}" == installed  # numbers cross Pulumi's wire as floats


def test_prometheus_scrapes_each_pod_with_the_label_the_analysis_compares(stack: Stack):
    """Through a Service, stable and canary pods look alike; a PodMonitor copies the pod's template hash
    onto its series (as a sanitised label name: the Prometheus Operator's podTargetLabels), which is what
    the analysis filters on. Prometheus must select the app's monitors without the chart's label."""
    prometheus = release(stack, "kube-prometheus-stack")["inputs"]["values"]["prometheus"]["prometheusSpec"]
    kinds = {r["type"].rsplit(":", 1)[1] for r in stack.resources if r["type"].startswith(f"kubernetes:{CRD_GROUP}/")}
    for kind in kinds:
        assert prometheus[f"{SELECTOR_SWITCH[kind]}SelectorNilUsesHelmValues"] is False, kind
    assert "ServiceMonitor" not in kinds, "a ServiceMonitor on the app's Services would scrape its pods twice"
    monitor = k8s_object(stack, "PodMonitor", "chatwizard")["inputs"]["spec"]
    pods = k8s_object(stack, "Deployment", "chatwizard")["inputs"]["spec"]["template"]["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= pods.items() and HASH_LABEL in monitor["podTargetLabels"]
    series_label = re.sub(r"[^a-zA-Z0-9_]", "_", HASH_LABEL)
    for metric in analysis(stack)["metrics"]:
        assert f'{series_label}="{{{{args.canary-hash}}}}"' in metric["provider"]["prometheus"]["query"], metric["name"]


def admitted(stack: Stack, namespace: str, direction: str, peer_namespace: str, port: int) -> bool:
    """Whether the NetworkPolicies in ``namespace`` let traffic on ``port`` in from (``ingress``) or out to
    (``egress``) ``peer_namespace``: true when no policy there restricts that direction."""
    specs = [p["inputs"]["spec"] for p in stack.of_type(NETWORK_POLICY) if p["inputs"]["metadata"]["namespace"] == namespace]
    restricting = [s for s in specs if direction.capitalize() in s["policyTypes"]]
    peers = "from" if direction == "ingress" else "to"
    return not restricting or any(
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == peer_namespace
        and any(p["port"] == port for p in rule.get("ports", []))
        for spec in restricting for rule in spec.get(direction, []) for peer in rule.get(peers, [])
    )


def test_the_rollouts_controller_reaches_prometheus(stack: Stack):
    """The controller runs the analysis: it queries Prometheus from its own namespace."""
    controller = release(stack, "argo-rollouts")["inputs"]["namespace"]
    prometheus = release(stack, "kube-prometheus-stack")["inputs"]["namespace"]
    assert admitted(stack, controller, "egress", prometheus, 9090)
    assert admitted(stack, prometheus, "ingress", controller, 9090)
