"""The Ansible lab: four throwaway systemd hosts (the launch VM, two load generators, the deploy
runner) converged for real by the repository's playbooks, twice, with the outside world standing
in on the lab's gateway (tests/ansible/standins.py). Everything is torn down at the end of the
session, also when a step fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import yaml

from chatwizard.core.crypto import new_key_entry
from chatwizard.estate.mail import MailSink
from chatwizard.estate.ports import free_port
from fakellm.config import FakeLLMConfig
from fakellm.testing import RunningFakeLLM, running_fake_llm
from tests.ansible.lab import CACHE_DIR, Host, Lab, running_lab
from tests.ansible.standins import (
    CA,
    DB_NAME,
    MAIL_NAME,
    LogCollector,
    log_collector,
    mail_relay,
    managed_postgres,
    s3_server,
    vendor_archives,
)

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
GROUPS = {"launch": ["launch-1"], "loadgen": ["loadgen-1", "loadgen-2"], "deploy_runner": ["deploy-runner-1"]}
PLAYBOOKS = {group: f"playbooks/{group}.yml" for group in GROUPS}
BUCKET = "chatwizard-lab-backups"  # inventories/local/group_vars/launch/vars.yml
K6_WORK = "/opt/k6/work"  # the k6 user's folder on a load generator (roles/k6)
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Converge:
    playbook: str
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
                for m in RECAP.finditer(self.output)}


@dataclass
class AnsibleLab:
    lab: Lab
    inventory: Path
    vault_password: Path
    ca: CA
    secrets: dict
    collector: LogCollector
    s3_endpoint: str
    llm: RunningFakeLLM
    mail: MailSink
    converges: list[list[Converge]] = field(default_factory=list)

    def address(self, name: str) -> str:
        return next(h.address for h in self.lab.hosts if h.name == name)

    def host(self, name: str):
        return next(h for h in self.lab.hosts if h.name == name)

    def s3(self):
        return boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="eu-west-1")


def wheelhouse() -> Path:
    """ansible/wheelhouse.sh's tar, cached by a hash of what goes into it (pins and app source)."""
    digest = hashlib.sha256()
    for path in sorted([ROOT / "constraints.txt", ROOT / "pyproject.toml", ANSIBLE_DIR / "wheelhouse.sh",
                        *(ROOT / "app").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    tar = CACHE_DIR / f"wheelhouse-{digest.hexdigest()[:12]}.tar"
    if not tar.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for stale in CACHE_DIR.glob("wheelhouse-*.tar"):
            stale.unlink()
        partial = tar.with_suffix(".partial")
        subprocess.run([str(ANSIBLE_DIR / "wheelhouse.sh"), str(partial)], check=True, capture_output=True,
                       env={**os.environ, "PIP": str(BIN / "pip")})
        partial.rename(tar)
    return tar


def ansible_env(work: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(work / "home")}


def write_vault(path: Path, password_file: Path, data: dict, env: dict[str, str]) -> None:
    path.write_text(yaml.safe_dump(data))
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file), str(path)],
                   check=True, capture_output=True, env=env)


def lab_secrets(lab: Lab, ca: CA, db_port: int, pubkey: str) -> dict:
    edge_cert, edge_key = ca.issue(["chat.lab"], [next(h.address for h in lab.hosts if h.name == "launch-1")])
    db_password = secrets.token_urlsafe(16)
    owner_url = (f"postgresql://postgres:{db_password}@{DB_NAME}:{db_port}/chatwizard"
                 "?sslmode=verify-full&sslrootcert=/etc/ssl/managed-db-ca.pem")
    return {
        "vault_admin_users": [{"name": "oncall", "ssh_keys": [pubkey]}],
        "vault_runner_registration_token": secrets.token_hex(16),
        "vault_edge_tls_cert": edge_cert,
        "vault_edge_tls_key": edge_key,
        "vault_chatwizard_db_password": secrets.token_urlsafe(16),
        "vault_chatwizard_migrate_database_url": owner_url,
        "vault_chatwizard_field_keys": new_key_entry("lab1"),
        "vault_openai_api_key": "sk-lab-" + secrets.token_hex(8),
        "vault_database_ca_pem": ca.pem,
        "vault_monitoring_postgres_dsn": owner_url,
        "vault_alertmanager_secrets": {"pagerduty-routing-key": secrets.token_hex(8),
                                       "slack-webhook-url": "https://hooks.slack.invalid/lab",
                                       "smtp-password": secrets.token_hex(8)},
        "vault_backups_aws_access_key_id": "testing",
        "vault_backups_aws_secret_access_key": "testing",
        "_db_owner_password": db_password,
    }


def write_inventory(work: Path, lab: Lab, lab_vars: dict[str, str]) -> Path:
    """A copy of inventories/local with the lab's hosts and variables (the repository stays clean)."""
    inventory = work / "inventory"
    shutil.copytree(ANSIBLE_DIR / "inventories" / "local", inventory)
    text = lab.inventory(GROUPS).rstrip("\n") + "\n" + "".join(f"{k}={v}\n" for k, v in lab_vars.items())
    (inventory / "hosts").write_text(text)
    return inventory


def converge(playbook: str, inventory: Path, password: Path, env: dict[str, str], log: Path) -> Converge:
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "--vault-password-file", str(password), playbook],
        cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=900)
    log.write_text(result.stdout + result.stderr)
    return Converge(playbook, result.returncode, result.stdout + result.stderr)


def failed_units(lab: Lab) -> str:
    """The journal of every failed unit on the lab's hosts: why a service did not start."""
    report = []
    for host in lab.hosts:
        failed = host.nsenter("systemctl", "--failed", "--no-legend", "--plain", check=False).stdout.split()
        for unit in (u for u in failed if "." in u):
            journal = host.nsenter("journalctl", "-u", unit, "-n", "25", "--no-pager", check=False).stdout
            report.append(f"\n--- {host.name}: {unit}\n{journal}")
    return "".join(report)


def converge_all(alab: AnsibleLab, env: dict[str, str], work: Path, round_: int) -> list[Converge]:
    """The three playbooks at once (they touch disjoint hosts)."""
    with ThreadPoolExecutor(len(PLAYBOOKS)) as pool:
        futures = [pool.submit(converge, book, alab.inventory, alab.vault_password, env,
                               work / f"converge-{round_}-{group}.log") for group, book in PLAYBOOKS.items()]
        return [f.result() for f in futures]


@pytest.fixture(scope="session")
def ansible_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnsibleLab]:
    work = tmp_path_factory.mktemp("ansible-lab")
    env = ansible_env(work)
    built: dict[str, Path | BaseException] = {}

    def build() -> None:
        try:
            built["tar"] = wheelhouse()
        except BaseException as exc:  # reported below, after the lab is up
            built["tar"] = exc

    builder = threading.Thread(target=build, name="wheelhouse")
    builder.start()
    names = [n for group in GROUPS.values() for n in group]
    with ExitStack() as stack:
        try:
            lab = stack.enter_context(running_lab(work / "lab", names, gateway_names=(DB_NAME, MAIL_NAME)))
        finally:
            builder.join()
        if isinstance(built["tar"], BaseException):
            raise built["tar"]
        ca = CA()
        db_port = free_port()
        data = lab_secrets(lab, ca, db_port, lab.key.with_suffix(".pub").read_text().strip())
        db = managed_postgres(work, lab.gateway, db_port, ca, {
            "postgres": data.pop("_db_owner_password"), "chatwizard_api": data["vault_chatwizard_db_password"]})
        stack.callback(db.stop)
        collector = stack.enter_context(log_collector(lab.gateway, free_port()))
        s3 = stack.enter_context(s3_server(lab.gateway, free_port(), work / "moto.log"))
        mail = stack.enter_context(mail_relay(work / "mail", lab.gateway, free_port(), ca))
        # At its realistic defaults (as in loadtest/): the launch load test measures answers with LLM latency.
        llm = stack.enter_context(running_fake_llm(FakeLLMConfig(), host=lab.gateway))
        pulumi_tar, agent_tar, rollouts = vendor_archives(work)
        inventory = write_inventory(work, lab, {
            "lab_gateway": lab.gateway, "lab_subnet": lab.cidr, "lab_log_port": collector.server_address[1],
            "lab_wheelhouse": built["tar"], "lab_fakellm_port": llm.root_url.rsplit(":", 1)[1],
            "lab_s3_port": s3.rsplit(":", 1)[1], "lab_db_port": db_port, "lab_mail_port": mail.port,
            "lab_pulumi_archive": pulumi_tar, "lab_agent_archive": agent_tar, "lab_rollouts_plugin": rollouts,
        })
        password = work / "vault-password"
        password.write_text(secrets.token_urlsafe(24))
        write_vault(inventory / "group_vars" / "all" / "vault.yml", password, data, env)
        alab = AnsibleLab(lab, inventory, password, ca, data, collector, s3, llm, mail)
        alab.s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for round_ in (1, 2):
            alab.converges.append(converge_all(alab, env, work, round_))
            if any(c.returncode for c in alab.converges[-1]):
                for converge_ in alab.converges[-1]:
                    converge_.output += failed_units(lab)
                break  # the tests report which play failed; a second round would hide it
        yield alab


@pytest.fixture(scope="session")
def traffic(ansible_lab: AnsibleLab) -> dict[str, str]:
    lab = ansible_lab
    assert not any(c.returncode for c in lab.converges[0]), "the first converge failed (test_hosts says why)"
    launch = lab.host("launch-1")
    as_app = ["systemd-run", "--quiet", "--pipe", "--wait", "--uid=chatwizard",
              "-p", "EnvironmentFile=/etc/chatwizard/chatwizard.env", "/opt/chatwizard/venv/bin/chatwizard"]
    launch.nsenter(*as_app, "seed")  # the sample catalogue (production ingests from YouTube)
    admin = launch.nsenter(*as_app, "keys", "create", "--email", "lab-admin@example.com", "--tier", "admin",
                           "--name", "k6").stdout.strip().splitlines()[-1]
    for name in ("loadgen-1", "loadgen-2"):
        lab.host(name).nsenter("tee", f"{K6_WORK}/lab-ca.pem", input=lab.ca.pem)
    return {"BASE_URL": f"https://{lab.address('launch-1')}", "ADMIN_KEY": admin, "SSL_CERT_FILE": f"{K6_WORK}/lab-ca.pem",
            "K6_NO_USAGE_REPORT": "true", "THINK_SCALE": "0.05"}


def k6(host: Host, env: dict[str, str], *args: str, script: str = "smoke") -> subprocess.CompletedProcess[str]:
    """k6 on a load generator, as its k6 user, against the launch VM's edge."""
    return host.nsenter("runuser", "-u", "k6", "--", "env", *(f"{k}={v}" for k, v in env.items()),
                        "/usr/local/bin/k6", "run", "--quiet", "--no-color", *args, f"/opt/k6/scenarios/{script}.js", check=False)


def fetch(host: Host, path: str, local: Path) -> Path:
    local.write_bytes(subprocess.run(["nsenter", "-t", str(host.pid), "-a", "-r", "cat", path],
                                     check=True, capture_output=True).stdout)
    return local
