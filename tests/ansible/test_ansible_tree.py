"""The ansible/ tree without hosts: lint, pinned collections, secrets only through the vault, and the
staging/production inventories built from Pulumi stack outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")}
TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)


def from_the_vault(value: str) -> bool:
    """The value is built from a vault_ variable (filters and the URL around it allowed)."""
    return any(re.match(r"\s*vault_\w+", t) for t in TEMPLATE.findall(value))


def test_ansible_lint_is_clean(tmp_path: Path):
    result = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor"], cwd=ANSIBLE_DIR,
                            env={**ENV, "ANSIBLE_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]


def test_installed_collections_are_the_pinned_ones(tmp_path: Path):
    pinned = {c["name"]: c["version"] for c in yaml.safe_load((ANSIBLE_DIR / "requirements.yml").read_text())["collections"]}
    listed = json.loads(subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
                                       env={**ENV, "ANSIBLE_HOME": str(tmp_path)}, capture_output=True,
                                       text=True, check=True).stdout)
    installed = {name: info["version"] for path in listed.values() for name, info in path.items()}
    assert {name: installed.get(name) for name in pinned} == pinned
    used = set(re.findall(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+:", "".join(
        p.read_text() for p in (ANSIBLE_DIR / "roles").rglob("*.yml"))))
    assert used - {"ansible.builtin"} <= set(pinned), "a role uses a collection requirements.yml does not pin"


def secret_options() -> set[str]:
    """Every role option marked no_log in its argument spec."""
    names = set()
    for spec in (ANSIBLE_DIR / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names |= {name for name, option in entry["options"].items() if option.get("no_log")}
    return names


def secret_leaves(value: object) -> list[str]:
    """The secret strings of an option's value: itself, or its entries' passwords (pgbouncer_users)."""
    if isinstance(value, list):
        return [leaf for item in value for leaf in secret_leaves(item)]
    if isinstance(value, dict):
        return [value["password"]] if "password" in value else ["(a mapping without a password)"]
    return [value] if isinstance(value, str) else [repr(value)]


@pytest.mark.parametrize("environment", ["staging", "production", "local"])
def test_secrets_come_only_from_the_vault(environment: str):
    secret = secret_options()
    assert {"chatwizard_app_db_password", "edge_tls_key", "deploy_runner_registration_token"} <= secret
    found = {}
    for path in (ANSIBLE_DIR / "inventories" / environment / "group_vars").rglob("*.yml"):
        text = path.read_text()
        assert not text.startswith("$ANSIBLE_VAULT") or path.name == "vault.yml"
        for name, value in (yaml.safe_load(text) or {}).items():
            if name in secret:
                found[name] = value
                assert all(from_the_vault(v) for v in secret_leaves(value)), f"{path}: {name} is not from the vault"
    assert found, "no secret is set at all"
    # No vault file is committed in plaintext (operators create them with ansible-vault).
    for vault in (ANSIBLE_DIR / "inventories").rglob("vault*.yml"):
        assert vault.read_text().startswith("$ANSIBLE_VAULT;"), vault


def test_readme_lists_every_vault_variable():
    used = set()
    for path in (ANSIBLE_DIR / "inventories").rglob("*.yml"):
        used |= set(re.findall(r"\bvault_\w+", path.read_text()))
    readme = (ANSIBLE_DIR / "README.md").read_text()
    assert {name for name in used if f"`{name}`" not in readme} == set()


def test_staging_inventory_comes_from_the_stack_outputs(tmp_path: Path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"ansibleInventory": {"deploy_runner": ["10.0.1.10"], "launch": ["10.0.2.20"],
                                                        "loadgen": ["10.0.3.30", "10.0.3.31"]}}))
    result = subprocess.run([str(BIN / "ansible-inventory"), "-i", "inventories/staging", "--list"],
                            cwd=ANSIBLE_DIR, env={**ENV, "PULUMI_OUTPUTS_FILE": str(outputs),
                                                  "ANSIBLE_HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert inventory["loadgen"]["hosts"] == ["loadgen-1", "loadgen-2"]
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["deploy-runner-1"]["ansible_host"] == "10.0.1.10"
    assert hostvars["launch-1"]["deploy_environment"] == "staging"  # group_vars of the folder apply


def test_inventory_without_the_output_says_what_is_missing(tmp_path: Path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"clusterName": "x"}))
    result = subprocess.run([sys.executable, str(ANSIBLE_DIR / "inventories" / "production" / "hosts.py"), "--list"],
                            env={**ENV, "PULUMI_OUTPUTS_FILE": str(outputs)}, capture_output=True, text=True)
    assert result.returncode != 0 and "ansibleInventory" in result.stderr


def role_defaults(role: str) -> dict:
    return yaml.safe_load((ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml").read_text())


def deploy_jobs() -> dict[str, set[str]]:
    """environment -> the runner labels its job in the release workflow asks for."""
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())["jobs"]
    return {job["environment"]: set(job["runs-on"]) for job in jobs.values() if "environment" in job}


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_runner_registers_with_the_labels_the_release_jobs_ask_for(environment: str):
    group_vars = ANSIBLE_DIR / "inventories" / environment / "group_vars"
    variables = {**yaml.safe_load((group_vars / "all" / "vars.yml").read_text()),
                 **yaml.safe_load((group_vars / "deploy_runner" / "vars.yml").read_text())}
    labels = variables.get("deploy_runner_labels", role_defaults("deploy_runner")["deploy_runner_labels"])
    registered = {jinja2.Template(label).render(variables) for label in labels}
    assert {"self-hosted", *registered} == deploy_jobs()[environment]  # GitHub adds self-hosted itself


def test_every_download_is_checked_against_a_checksum():
    """A vendor archive fetched over the network is verified: a get_url without a checksum, or a
    download's default checksum left empty, would run whatever the URL serves on the deploy runner."""
    for tasks in (ANSIBLE_DIR / "roles").glob("*/tasks/*.yml"):
        for task in yaml.safe_load(tasks.read_text()) or []:
            if "ansible.builtin.get_url" in task:
                assert task["ansible.builtin.get_url"].get("checksum"), (tasks.name, task["name"])
    downloads = 0
    for defaults in (ANSIBLE_DIR / "roles").glob("*/defaults/main.yml"):
        values = yaml.safe_load(defaults.read_text()) or {}
        for name in (k for k in values if k.endswith("_url") and f"{k[:-4]}_checksum" in values):
            downloads += 1
            assert values[f"{name[:-4]}_checksum"].startswith("sha256:"), (defaults.parent.parent.name, name)
    assert downloads == 3  # Pulumi, the runner agent, the Argo Rollouts plugin
