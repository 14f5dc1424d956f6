"""What the converged hosts do for the people and programs that rely on them, checked from outside
with testinfra over SSH (as on-call would log in) and with real clients from the lab's gateway."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import testinfra

from tests.ansible.conftest import BUCKET, GROUPS, AnsibleLab

# The lab's first use builds its base image (minutes); converging it twice takes a few more.
pytestmark = pytest.mark.timeout(1800)

SERVICES = {
    "launch": ["ssh", "nftables", "rsyslog", "redis-server", "pgbouncer", "chatwizard", "nginx", "prometheus",
               "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-redis-exporter",
               "prometheus-postgres-exporter", "prometheus-blackbox-exporter", "chatwizard-backup.timer"],
    "loadgen": ["ssh", "nftables", "rsyslog"],
    "deploy_runner": ["ssh", "nftables", "rsyslog", "actions-runner"],
}
# Who each long-running service runs as: never root.
SERVICE_USERS = {"chatwizard": "chatwizard", "redis-server": "redis", "pgbouncer": "postgres",
                 "prometheus": "prometheus", "prometheus-alertmanager": "prometheus", "nginx": "www-data"}


@pytest.fixture(scope="module")
def lab(ansible_lab: AnsibleLab) -> AnsibleLab:
    first = ansible_lab.converges[0]
    failed = [c for c in first if c.returncode]
    assert not failed, "\n\n".join(c.output[-6000:] for c in failed)
    return ansible_lab


def infra(lab: AnsibleLab, name: str, user: str = "oncall"):
    """A testinfra host over SSH, as an admin from the vault logs in."""
    return testinfra.get_host(
        f"ssh://{user}@{lab.address(name)}", ssh_identity_file=str(lab.lab.key), sudo=True,
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")


def names(group: str) -> list[str]:
    return GROUPS[group]


def test_every_playbook_converges_then_changes_nothing_the_second_time(lab: AnsibleLab):
    assert len(lab.converges) == 2, "the second converge did not run"
    for converge in lab.converges[1]:
        assert converge.returncode == 0, converge.output[-4000:]
        recap = converge.recap()
        assert recap and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), (
            converge.playbook, recap, [line for line in converge.output.splitlines() if line.startswith("changed:")])


def test_hosts_reload_a_unit_of_the_same_name_at_once(lab: AnsibleLab):
    """Each host owns its cgroups as a VM does: a handler reloading nftables on every host of a play at
    once must not fail on one of them (with a shared cgroup tree it failed one reload in five, 219/CGROUP)."""
    def reload(host) -> str:
        result = host.nsenter("systemctl", "reload", "nftables", check=False)
        return "" if result.returncode == 0 else host.nsenter(
            "journalctl", "-u", "nftables", "-n", "3", "--no-pager", check=False).stdout

    with ThreadPoolExecutor(len(lab.lab.hosts)) as pool:
        failures = [f for _ in range(25) for f in pool.map(reload, lab.lab.hosts) if f]
    assert not failures, failures[:3]


@pytest.mark.parametrize("group", list(GROUPS))
def test_services_are_enabled_and_running(lab: AnsibleLab, group: str):
    for name in names(group):
        host = infra(lab, name)
        for unit in SERVICES[group]:
            service = host.service(unit)
            assert service.is_enabled and service.is_running, f"{name}: {unit}"
        assert host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
        assert host.run("systemctl --failed --no-legend --plain").stdout.strip() == "", name


def test_services_run_as_their_own_unprivileged_users(lab: AnsibleLab):
    host = infra(lab, "launch-1")
    for unit, user in SERVICE_USERS.items():
        pid = host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        owners = set(host.run(f"ps -o user= --ppid {pid} -p {pid}").stdout.split())
        if unit == "nginx":  # the master binds 443 as root, the workers serve
            owners.discard("root")
        assert owners == {user}, (unit, owners)
    runner = infra(lab, "deploy-runner-1")
    pid = runner.run("systemctl show -p MainPID --value actions-runner").stdout.strip()
    assert runner.run(f"ps -o user= -p {pid}").stdout.strip() == "runner"


def listeners(host) -> set[tuple[str, int]]:
    rows = host.run("ss -Hltn").stdout.splitlines()
    found = set()
    for row in rows:
        local = row.split()[3]
        address, port = local.rsplit(":", 1)
        found.add((address.strip("[]"), int(port)))
    return found


def test_launch_vm_listens_publicly_only_for_ssh_and_https(lab: AnsibleLab):
    public = {(a, p) for a, p in listeners(infra(lab, "launch-1")) if a not in ("127.0.0.1", "::1", "127.0.0.53")}
    assert {p for _, p in public} == {22, 443}, public
    internal = {p for a, p in listeners(infra(lab, "launch-1")) if a == "127.0.0.1"}
    # the app, its metrics, Redis (TLS), PgBouncer, Prometheus, Alertmanager, exporters
    assert {8000, 9000, 6379, 6432, 9090, 9093, 9100, 9121, 9187, 9115} <= internal


def connects(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((address, port)) == 0


def test_firewall_drops_everything_not_opened(lab: AnsibleLab):
    launch = lab.host("launch-1")
    # Something listening on all addresses that no rule opens: the firewall must hide it.
    server = subprocess.Popen(["nsenter", "-t", str(launch.pid), "-a", "-r", "-w", "/usr/bin/python3", "-m",
                               "http.server", "8081", "--bind", "0.0.0.0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert launch.nsenter("sh", "-c", "for i in $(seq 200); do ss -Hltn | grep -q :8081 && exit 0;"
                                          " sleep 0.1; done; exit 1", check=False).returncode == 0
        assert not connects(lab.address("launch-1"), 8081)
        assert connects(lab.address("launch-1"), 443) and connects(lab.address("launch-1"), 22)
    finally:
        server.kill()
        server.wait()
    assert not connects(lab.address("loadgen-1"), 443)
    ruleset = infra(lab, "deploy-runner-1").run("nft list chain inet filter input").stdout
    assert "policy drop;" in ruleset


def test_edge_serves_the_vault_certificate_and_proxies_to_the_app(lab: AnsibleLab):
    context = ssl.create_default_context(cadata=lab.ca.pem)
    with socket.create_connection((lab.address("launch-1"), 443), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="chat.lab") as tls:
        served = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert served.strip() == lab.secrets["vault_edge_tls_cert"].strip()
    with httpx.Client(verify=context, trust_env=False) as client:
        ready = client.get(f"https://{lab.address('launch-1')}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert "server: nginx/" not in str(ready.headers).lower()  # server_tokens off


SECRET_FILES = {  # path: (mode, owner, group)
    "/etc/chatwizard/chatwizard.env": ("0o640", "root", "chatwizard"),
    "/etc/pgbouncer/userlist.txt": ("0o600", "postgres", "postgres"),
    "/etc/nginx/tls/origin.key": ("0o600", "root", "root"),
    "/etc/chatwizard-backup.env": ("0o600", "root", "root"),
    "/etc/default/prometheus-postgres-exporter": ("0o600", "root", "root"),
    "/etc/chatwizard-tls/local.key": ("0o640", "root", "tls-local"),
    "/etc/prometheus/alertmanager-secrets/smtp-password": ("0o640", "root", "prometheus"),
}


def test_secrets_are_readable_only_by_their_service(lab: AnsibleLab):
    host = infra(lab, "launch-1")
    for path, (mode, owner, group) in SECRET_FILES.items():
        f = host.file(path)
        assert (oct(f.mode), f.user, f.group) == (mode, owner, group), path
    # No world-readable file under /etc carries the database password.
    password = lab.secrets["vault_chatwizard_db_password"]
    leaks = host.run(f"find /etc -type f -perm -o=r -exec grep -l -F -- '{password}' {{}} +").stdout.split()
    assert leaks == []
    assert host.run("grep -c -F -- '$ANSIBLE_VAULT' /etc/chatwizard/chatwizard.env").stdout.strip() == "0"


@pytest.mark.parametrize("name", ["launch-1", "loadgen-1", "deploy-runner-1"])
def test_ssh_takes_keys_of_named_admins_only(lab: AnsibleLab, name: str):
    config = infra(lab, name).run("sshd -T").stdout
    for setting in ("permitrootlogin no", "passwordauthentication no", "kbdinteractiveauthentication no",
                    "x11forwarding no", "maxauthtries 3"):
        assert setting in config, setting

    def ssh(user: str, *options: str) -> int:
        return subprocess.run(
            ["ssh", "-i", str(lab.lab.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", *options,
             f"{user}@{lab.address(name)}", "true"], capture_output=True).returncode

    assert ssh("oncall") == 0
    assert ssh("root") != 0  # the key is the same: root is refused for who it is
    assert ssh("oncall", "-o", "PreferredAuthentications=password,keyboard-interactive") != 0


def test_logs_reach_the_log_endpoint(lab: AnsibleLab):
    marker = f"lab-check-{uuid.uuid4()}"
    for name in ("launch-1", "loadgen-2", "deploy-runner-1"):
        infra(lab, name).run(f"logger -t labcheck {marker}-{name}")
        line = lab.collector.wait_for(f"{marker}-{name}")
        assert name in line  # the sending host names itself
    # The app's own journal lines are shipped too.
    lab.collector.wait_for("chatwizard", timeout_s=10)


def test_backup_lands_in_the_bucket_as_a_database_dump(lab: AnsibleLab):
    host = infra(lab, "launch-1")
    run = host.run("systemctl start chatwizard-backup.service")
    assert run.rc == 0, host.run("journalctl -u chatwizard-backup --no-pager -n 30").stdout
    s3 = lab.s3()
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="launch/launch-1/").get("Contents", [])
    assert objects, "no backup in the bucket"
    body = s3.get_object(Bucket=BUCKET, Key=objects[-1]["Key"])["Body"].read()
    assert body[:5] == b"PGDMP" and len(body) > 10_000  # pg_dump's custom format, with the schema in it


def test_deploy_runner_has_its_tools_and_agent(lab: AnsibleLab):
    host = infra(lab, "deploy-runner-1")
    as_runner = "sudo -u runner -H "
    assert host.run(as_runner + "aws --version").stdout.startswith("aws-cli/2.")
    assert "v1.37" in host.run(as_runner + "kubectl version --client").stdout
    assert host.run(as_runner + "k6 version").stdout.startswith("k6 v1.1")
    assert "v3.210.0" in host.run(as_runner + "pulumi version").stdout
    # kubectl finds the plugin on the PATH: `make rollout-status` runs `kubectl argo rollouts status ...`
    assert "v1.9.0" in host.run(as_runner + "kubectl argo rollouts version").stdout
    registration = json.loads(host.file("/opt/actions-runner/.runner").content_string)
    assert host.file("/opt/actions-runner/.runner").user == "runner"
    assert registration == {"gitHubUrl": "https://github.com/chatwizard/estate", "labels": "chatwizard-deploy,local"}
    # The pattern on stdin: on a command line (sudo's) it would land in the logs searched.
    token = lab.secrets["vault_runner_registration_token"]
    found = lab.host("deploy-runner-1").nsenter("grep", "-r", "-l", "-F", "-f", "-", "/opt/actions-runner", "/etc",
                                                "/var/log", input=token + "\n", check=False)
    assert found.returncode == 1 and found.stdout == "", found.stdout  # 1: searched, nothing found
