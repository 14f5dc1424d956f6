"""Every command, query and link in the runbooks and manuals works against what the repository builds.

kubectl commands are checked against the Kubernetes objects the Pulumi program declares for each stack
(run under Pulumi's mocks: the same objects `pulumi up` creates), `chatwizard` commands against the
CLI, `make` targets against the Makefile, PromQL against Prometheus's parser and the metrics that
exist, and links against the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from prometheus_client import REGISTRY

from chatwizard.cli import app as cli_app
from monitoring.catalog import EXPORTERS, known_metrics, metric_names
from monitoring.generate import rule_files
from tests.infra.conftest import declared
from tests.runbooks.snippets import ROOT, Snippet, commands, documents, links, promql, repo_paths, snippets

ENVIRONMENTS = list(yaml.safe_load(EXPORTERS.read_text())["environments"])
# kubectl's short names for the kinds the runbooks use.
KINDS = {
    "deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
    "po": "Pod", "pod": "Pod", "pods": "Pod",
    "svc": "Service", "service": "Service", "services": "Service",
    "job": "Job", "jobs": "Job", "cronjob": "CronJob", "cronjobs": "CronJob", "cj": "CronJob",
    "secret": "Secret", "secrets": "Secret", "cm": "ConfigMap", "configmap": "ConfigMap",
    "configmaps": "ConfigMap", "hpa": "HorizontalPodAutoscaler", "pdb": "PodDisruptionBudget",
    "sts": "StatefulSet", "statefulset": "StatefulSet", "ds": "DaemonSet", "daemonset": "DaemonSet",
    "ing": "Ingress", "ingress": "Ingress", "netpol": "NetworkPolicy", "networkpolicy": "NetworkPolicy",
    "sa": "ServiceAccount", "prometheusrule": "PrometheusRule", "servicemonitor": "ServiceMonitor",
    "events": "Event", "event": "Event", "rollout": "Rollout",
}
CLUSTER_SCOPED = {"nodes", "node", "no", "namespaces", "namespace", "ns", "crd", "crds", "pv",
                  "clusterrole", "clusterroles", "storageclass", "sc"}
NO_NAMESPACE_VERBS = {"kustomize", "config", "version", "cluster-info", "api-resources", "api-versions"}
FLAGS_WITH_VALUE = {"-n", "--namespace", "-l", "--selector", "-o", "--output", "-c", "--container",
                    "--since", "--tail", "--replicas", "-f", "--filename", "-k", "--kustomize",
                    "--from", "--to-revision", "--timeout", "--sort-by", "--field-selector", "-p"}
# Words that stand for a value the reader fills in.
PLACEHOLDER = re.compile(r"^(PLACEHOLDER|[A-Z][A-Z0-9_]*|.*PLACEHOLDER.*|\$.*|\.\.\.|…)$")


@cache
def cluster(stack: str) -> dict[str, list[dict]]:
    """Namespace -> the Kubernetes objects the stack declares there (kind, name, labels, pod labels)."""
    objects: dict[str, list[dict]] = {}
    for resource in declared(stack).resources:
        if not resource["type"].startswith("kubernetes:") or resource["type"].endswith(("Provider", "ConfigGroup")):
            continue
        inputs = resource["inputs"]
        if resource["type"] == "kubernetes:helm.sh/v3:Release":  # a chart's objects are not rendered here
            objects.setdefault(inputs["namespace"], []).append({"kind": "*", "name": "*"})
            continue
        meta = inputs.get("metadata", {})
        if inputs.get("kind") == "Namespace":
            objects.setdefault(meta["name"], [])
            continue
        spec = inputs.get("spec") or {}
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template") or {}
        objects.setdefault(meta.get("namespace", "default"), []).append({
            "kind": inputs.get("kind"), "name": meta.get("name"), "labels": meta.get("labels") or {},
            "pod_labels": (template.get("metadata") or {}).get("labels") or {},
        })
    return objects


def kubectl_problems(words: list[str], stack: str) -> Iterator[str]:
    namespace, selector, all_namespaces, positionals = None, None, False, []
    i = 1
    while i < len(words):
        word = words[i]
        flag, _, inline = word.partition("=")
        if word == "--":
            break
        if flag in FLAGS_WITH_VALUE:
            value = inline or (words[i + 1] if i + 1 < len(words) else "")
            i += 0 if inline else 1
            if flag in ("-n", "--namespace"):
                namespace = value
            elif flag in ("-l", "--selector"):
                selector = value
        elif word in ("-A", "--all-namespaces"):
            all_namespaces = True
        elif not word.startswith("-"):
            positionals.append(word)
        i += 1
    if positionals[:2] == ["argo", "rollouts"]:  # the Argo Rollouts plugin: `argo rollouts <verb> <rollout>`
        if len(positionals) < 3 or positionals[2] == "version":
            return  # the plugin named, not a command on the cluster
        verb, rest = positionals[2], positionals[3:]
        args = ["rollout", *rest[1:]] if verb == "get" else ["rollout", *rest]
    elif not positionals or positionals[0] in NO_NAMESPACE_VERBS:
        return
    else:
        verb, args = positionals[0], positionals[1:]
    if verb in ("rollout", "top", "auth", "set") and args:
        args = args[1:]
    if (args and args[0] in CLUSTER_SCOPED) or all_namespaces:
        return
    objects = cluster(stack)
    if namespace is None:
        yield "has no -n <namespace>: kubectl would use the context's default namespace"
        return
    if PLACEHOLDER.match(namespace):
        return
    if namespace not in objects:
        yield f"namespace {namespace!r} does not exist (stack declares {sorted(objects)})"
        return
    here = objects[namespace]
    charted = any(o["kind"] == "*" for o in here)
    if selector and not PLACEHOLDER.match(selector) and not charted:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        if not any(wanted.items() <= (o["labels"] | o["pod_labels"]).items() for o in here):
            yield f"selector {selector!r} matches nothing in namespace {namespace}"
    for kind, name in references(args):
        if charted or PLACEHOLDER.match(name) or kind in ("Pod", "Event"):
            continue
        if not any(o["kind"] == kind and o["name"] == name for o in here):
            yield f"{kind} {name!r} does not exist in namespace {namespace}"


def references(args: list[str]) -> Iterator[tuple[str, str]]:
    """(kind, name) pairs of `deploy/x` or `job x` arguments."""
    for arg in args:
        if "/" in arg and arg.split("/", 1)[0].lower() in KINDS:
            kind, name = arg.split("/", 1)
            yield KINDS[kind.lower()], name
    if args and "/" not in args[0] and args[0].lower() in KINDS:
        for name in args[1:]:
            if not name.startswith("-") and "/" not in name:
                yield KINDS[args[0].lower()], name


def cli_problems(words: list[str]) -> Iterator[str]:
    command = typer.main.get_command(cli_app)
    path = ["chatwizard"]
    args = words[1:]
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        sub = command.commands.get(args[0])
        if sub is None:
            if not PLACEHOLDER.match(args[0]):
                yield f"`{' '.join(path)}` has no command {args[0]!r}"
            return
        command, path, args = sub, [*path, args[0]], args[1:]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag.startswith("-") and flag not in options:
            yield f"`{' '.join(path)}` has no option {flag} (it has {sorted(options)})"


@cache
def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.MULTILINE))


def make_problems(words: list[str]) -> Iterator[str]:
    for word in words[1:]:
        if not word.startswith("-") and "=" not in word and word not in make_targets():
            yield f"the Makefile has no target {word!r}"


def promtool_problems(words: list[str]) -> Iterator[str]:
    for word in words[1:]:
        if "/" in word and not PLACEHOLDER.match(word) and "*" not in word and not (ROOT / word).exists():
            yield f"{word} does not exist"


def all_snippets() -> list[Snippet]:
    return [s for path in documents() for s in snippets(path)]


def command_problems(stack: str) -> list[str]:
    found = []
    for snippet in all_snippets():
        for words in commands(snippet):
            checks = {"kubectl": lambda w: kubectl_problems(w, stack), "chatwizard": cli_problems,
                      "make": make_problems, "promtool": promtool_problems}[words[0]]
            found += [f"{snippet.where()}: `{' '.join(words)}`: {p}" for p in checks(words)]
    return found


def test_the_documents_hold_commands():
    """The extraction itself finds what a reader would paste (guards against checking nothing)."""
    tools = {words[0] for s in all_snippets() for words in commands(s)}
    assert {"kubectl", "chatwizard", "make"} <= tools


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_command_works_against_what_is_built(stack: str):
    problems = command_problems(stack)
    assert not problems, "\n".join(problems)


def test_every_query_parses_and_reads_metrics_that_exist(prometheus_parser: str):
    recorded = {r["record"] for doc in rule_files().values() for g in doc["groups"] for r in g["rules"] if "record" in r}
    # The manuals serve the local estate and production alike: a metric either of them has.
    known = set().union(*(known_metrics(env) for env in ENVIRONMENTS)) | recorded
    known |= {family.name for family in REGISTRY.collect()}  # + histogram names
    problems = []
    queries = [(s, q) for s in all_snippets() if (q := promql(s))]
    assert len(queries) >= 10, "the runbooks' queries were not found"
    for snippet, expression in queries:
        query = expression.replace("$__rate_interval", "1m")  # Grafana's variable, as the dashboards test does
        response = httpx.get(f"{prometheus_parser}/api/v1/format_query", params={"query": query})
        if response.status_code != 200:
            problems.append(f"{snippet.where()}: `{query}` does not parse: {response.json().get('error')}")
        colon_names = set(re.findall(r"[a-z_]+:[a-z0-9_:]+", re.sub(r"\[[^\]]*\]|\"[^\"]*\"", "", query)))
        unknown = (metric_names(query) - known) | (colon_names - recorded)
        if unknown:
            problems.append(f"{snippet.where()}: `{query}` reads metrics that do not exist: {sorted(unknown)}")
    assert not problems, "\n".join(problems)


def test_every_link_resolves():
    problems = []
    for path in documents():
        for line, href in links(path):
            if re.match(r"^[a-z]+:", href) or href.startswith("#"):
                continue
            target = (path.parent / href.split("#", 1)[0]).resolve()
            if not target.exists():
                problems.append(f"{path.relative_to(ROOT)}:{line}: link to {href} goes nowhere")
        for line, mentioned in repo_paths(path):
            if not (ROOT / mentioned).exists():
                problems.append(f"{path.relative_to(ROOT)}:{line}: {mentioned} does not exist")
    assert not problems, "\n".join(problems)


def test_runbook_urls_in_the_alerts_point_at_runbooks():
    """Each alert's runbook_url names a runbook file that exists (the URL is stamped from one pattern)."""
    for doc in rule_files().values():
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    name = Path(rule["annotations"]["runbook_url"]).name
                    assert (ROOT / "runbooks" / name).exists(), f"{rule['alert']}: no runbooks/{name}"
