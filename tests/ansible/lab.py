"""Throwaway Debian hosts with systemd as PID 1, for converging the Ansible roles for real.

A base root file system is made once with debootstrap (bookworm, minbase, plus the packages the roles
install: the hosts have no route to a package mirror) and cached outside the repository, keyed by a
hash of what goes into it. Each host boots from an overlay on that base, in its own network
namespace with a veth on a private bridge and its own cgroup subtree (a cgroup namespace), with
systemd as PID 1 (unshare + chroot; Podman and systemd-nspawn do not work on this kind of machine). Like a Debian cloud image, each host has an
`admin` user with passwordless sudo and the lab's throwaway SSH key, and nothing else configured.

Teardown powers systemd off (SIGRTMIN+4; SIGTERM only makes it re-execute), kills what is left in
the host's PID namespace, deletes the namespace, the host's cgroups and its files. Names carry the creating
process's id, so a lab whose process died is reaped by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUITE = "bookworm"
PREFIX = "cwl"  # every netns, bridge and veth of a lab starts with it, then the owner's pid
CGROUP_ROOT = Path("/sys/fs/cgroup")
CACHE_DIR = Path(os.environ.get("CHATWIZARD_LAB_CACHE", Path.home() / ".cache" / "chatwizard-lab"))
SUBNET_BASE = "10.207"  # a private /24 per lab: 10.207.N.0/24, bridge .1, hosts .11, .12 ...
ADMIN_USER = "admin"  # what Debian's cloud images call their first user

# What the base holds: systemd and sshd to boot and be reached, python3 for Ansible, and every
# Debian package a role installs (the roles' apt tasks run and find them present).
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "python3-venv",
    "sudo", "iproute2", "procps", "ca-certificates", "openssl", "curl", "nftables", "rsyslog",
    "rsyslog-gnutls", "nginx-light", "redis-server", "pgbouncer", "prometheus",
    "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-redis-exporter",
    "prometheus-postgres-exporter", "prometheus-blackbox-exporter", "awscli", "git",
)
# Enabled by their packages; the roles decide what runs, so the base starts none of them.
PACKAGE_SERVICES = (
    "nginx", "redis-server", "pgbouncer", "prometheus", "prometheus-alertmanager",
    "prometheus-node-exporter", "prometheus-redis-exporter", "prometheus-postgres-exporter",
    "prometheus-blackbox-exporter", "rsyslog", "nftables",
)
# Units that make no sense in a host without consoles or hardware.
MASKED_UNITS = (
    "getty@tty1.service", "console-getty.service", "serial-getty@.service", "systemd-udevd.service",
    "systemd-udevd-control.socket", "systemd-udevd-kernel.socket", "systemd-timesyncd.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
)


def run(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


def apt_mirror() -> str:
    """The Debian mirror apt uses on this machine (the only one reachable)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not path.is_file():
            continue
        text = path.read_text()
        for m in re.finditer(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            uri = m.group(1) or m.group(2)
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def base_key() -> str:
    recipe = "\n".join([SUITE, *BASE_PACKAGES, "|", *PACKAGE_SERVICES, "|", *MASKED_UNITS, ADMIN_USER, "v1"])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _chroot_script(root: Path, script: str) -> None:
    """Run a shell script chrooted in `root` with /proc, /sys and /dev mounted in a private namespace."""
    run("unshare", "--fork", "--pid", "--mount", "--", "sh", "-euc",
        f"mount --make-rprivate /; mount -t proc proc {root}/proc; mount --rbind /dev {root}/dev;"
        f" mount -t sysfs sys {root}/sys; exec chroot {root} sh -euc '{script}'")


def build_base(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached base root, built if missing (~2-4 minutes the first time)."""
    dest = cache_dir / f"{SUITE}-{base_key()}"
    if (dest / ".complete").exists():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs wait for one build
        if (dest / ".complete").exists():
            return dest
        tmp = dest.with_name(dest.name + ".partial")
        _remove_unmounted(tmp)
        # In a mount namespace of its own: a killed debootstrap leaves no /proc or /sys mounted.
        run("unshare", "--fork", "--mount", "--", "sh", "-euc",
            f"mount --make-rprivate /; exec debootstrap --variant=minbase"
            f" --include=systemd,systemd-sysv,dbus,python3 {SUITE} {tmp} {apt_mirror()}")
        shutil.copy("/etc/resolv.conf", tmp / "etc/resolv.conf")
        (tmp / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")  # no service starts in the build
        (tmp / "usr/sbin/policy-rc.d").chmod(0o755)
        packages = " ".join(BASE_PACKAGES)
        _chroot_script(tmp, f"export DEBIAN_FRONTEND=noninteractive; apt-get update -qq;"
                            f" apt-get install -y -qq --no-install-recommends {packages} >/dev/null;"
                            " apt-get clean")
        services = " ".join(f"{s}.service" for s in PACKAGE_SERVICES)
        _chroot_script(tmp, f"systemctl disable {services} 2>/dev/null || true;"
                            f" systemctl mask {' '.join(MASKED_UNITS)};"
                            f" useradd --create-home --shell /bin/bash --groups sudo {ADMIN_USER};"
                            f" echo \"{ADMIN_USER} ALL=(ALL) NOPASSWD:ALL\" > /etc/sudoers.d/90-cloud-init-users;"
                            " chmod 440 /etc/sudoers.d/90-cloud-init-users; passwd --lock root")
        (tmp / "usr/sbin/policy-rc.d").unlink()
        (tmp / "etc/machine-id").write_text("")  # each host gets its own at boot
        (tmp / "etc/resolv.conf").write_text("")  # no resolver: the hosts are offline
        (tmp / ".complete").touch()
        tmp.rename(dest)
        return dest


def _remove_unmounted(path: Path) -> None:
    """rm -rf, refusing when anything is still mounted below `path` (it would reach into /dev)."""
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    if any(f" {path}/" in line or f" {path} " in line for line in mounts):
        raise RuntimeError(f"{path} still has mounts; not removing it")
    shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names() -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def reap_stale(prefix: str = PREFIX) -> None:
    """Remove the namespaces and bridges of labs whose creating process is gone."""
    for ns in _netns_names():
        m = re.fullmatch(rf"{prefix}(\d+)h\d+", ns)
        if m and not _pid_alive(int(m.group(1))):
            _kill_netns_processes(ns)
            run("ip", "netns", "del", ns, check=False)
            _remove_cgroups(ns)
    links = run("ip", "-o", "link", "show", "type", "bridge", check=False).stdout
    for m in re.finditer(rf"^\d+:\s+({prefix}(\d+)b):", links, re.M):
        if not _pid_alive(int(m.group(2))):
            run("ip", "link", "del", m.group(1), check=False)


@dataclass(frozen=True)
class Hierarchy:
    """One of the machine's cgroup mounts under /sys/fs/cgroup, and this process's cgroup in it."""

    name: str  # its folder under /sys/fs/cgroup
    mount: str  # the mount command's -t and -o for a fresh mount of it
    own: str  # this process's cgroup in it, from /proc/self/cgroup

    def host_dir(self, netns: str) -> Path:
        return CGROUP_ROOT / self.name / self.own.lstrip("/") / netns


def cgroup_hierarchies() -> list[Hierarchy]:
    """The machine's cgroup v1 controllers, named hierarchies and the cgroup2 mount."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            own[c] = path
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, target, fstype, options, *_ = line.split()
        if not target.startswith(f"{CGROUP_ROOT}/") or fstype not in ("cgroup", "cgroup2"):
            continue
        if fstype == "cgroup2":
            found.append(Hierarchy(Path(target).name, "-t cgroup2", own.get("", "/")))
            continue
        picked = [o for o in options.split(",") if o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec")]
        key = next((o for o in picked if o.startswith("name=")), picked[0])
        mount_options = ",".join(["none", *picked] if key.startswith("name=") else picked)
        found.append(Hierarchy(Path(target).name, f"-t cgroup -o {mount_options}", own.get(key, "/")))
    return found


def _remove_cgroups(netns: str, timeout_s: float = 10) -> None:
    """The host's cgroup folders, deepest first (rmdir is how cgroups are removed). A cgroup is busy
    until its last process has exited, which can be a moment after the host's PID 1 is gone."""
    deadline = time.monotonic() + timeout_s
    for hierarchy in cgroup_hierarchies():
        top = hierarchy.host_dir(netns)
        while top.is_dir():
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)


def _kill_netns_processes(ns: str) -> None:
    for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _free_subnet(start: int) -> int:
    routes = run("ip", "-4", "route", "show", "table", "all", check=False).stdout
    for i in range(250):
        n = (start + i) % 250 + 1
        if f"{SUBNET_BASE}.{n}." not in routes:
            return n
    raise RuntimeError("no free 10.207.N.0/24 subnet for a lab")


def _join_own_cgroups(netns: str) -> str:
    """Shell that moves itself into a cgroup of the host's own in every hierarchy, before the cgroup
    namespace is made: a real VM's systemd owns its whole tree, and hosts sharing the machine's tree
    remove each other's cgroups when they run a unit of the same name at once (status 219/CGROUP).
    cpuset is left shared: systemd does not manage it on cgroup v1, and a new cpuset cgroup would
    need its CPUs and memory nodes copied."""
    steps = []
    for hierarchy in cgroup_hierarchies():
        if "cpuset" in hierarchy.mount:
            continue
        folder = hierarchy.host_dir(netns)
        folder.mkdir(parents=True, exist_ok=True)  # here: the shell must start no child (see _child_pid)
        steps.append(f"echo $$ > {folder}/cgroup.procs;")
    return " ".join(steps)


def _cgroup_mounts(target: Path) -> str:
    """Shell that mounts the machine's cgroup layout afresh at `target`: inside the cgroup namespace,
    each hierarchy shows the host's own cgroup as its root."""
    steps = [f"mount -t tmpfs -o mode=755 cgroup {target};"]
    for entry in sorted(CGROUP_ROOT.iterdir()):
        if entry.is_symlink():
            steps.append(f"ln -s {os.readlink(entry)} {target / entry.name};")
        else:
            steps.append(f"mkdir {target / entry.name};")
    for hierarchy in cgroup_hierarchies():
        steps.append(f"mount {hierarchy.mount} cgroup {target / hierarchy.name};")
    return " ".join(steps)


@dataclass
class Host:
    name: str
    address: str
    netns: str
    root: Path  # per-host state: upper/work/merged of the overlay
    unshare: subprocess.Popen | None = None
    pid: int = 0  # systemd, PID 1 inside

    def nsenter(self, *cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host (all its namespaces, its root)."""
        return run("nsenter", "-t", str(self.pid), "-a", "-r", "-w", *cmd, check=check, **kw)


@dataclass
class Lab:
    """A private /24 with a bridge in this namespace and N systemd hosts on it."""

    workdir: Path
    owner: int = field(default_factory=os.getpid)
    hosts: list[Host] = field(default_factory=list)
    subnet: int = 0

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.owner}b"

    @property
    def gateway(self) -> str:
        """This side's address on the lab bridge: where the hosts reach the test's servers."""
        return f"{SUBNET_BASE}.{self.subnet}.1"

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    def start(self, names: list[str], base: Path, gateway_names: tuple[str, ...] = ()) -> None:
        """Boot a host per name; `gateway_names` resolve to the gateway in every host's /etc/hosts."""
        reap_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", str(self.key))
        self.subnet = _free_subnet(self.owner)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        etc_hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n" + "".join(
            f"{self._address(i)} {name}\n" for i, name in enumerate(names))
        if gateway_names:
            etc_hosts += f"{self.gateway} {' '.join(gateway_names)}\n"
        # One after another: a boot is the busiest moment of a host, and the lab's tests wait for all.
        for i, name in enumerate(names):
            self.hosts.append(self._boot(name, i, base, etc_hosts))
            self._wait_up(self.hosts[-1])

    def _address(self, index: int) -> str:
        return f"{SUBNET_BASE}.{self.subnet}.{11 + index}"

    @property
    def cidr(self) -> str:
        return f"{SUBNET_BASE}.{self.subnet}.0/24"

    def _boot(self, name: str, index: int, base: Path, etc_hosts: str) -> Host:
        netns = f"{PREFIX}{self.owner}h{index}"
        host = Host(name, self._address(index), netns, self.workdir / name)
        run("ip", "netns", "add", netns)
        run("ip", "link", "add", netns, "type", "veth", "peer", "name", "eth0", "netns", netns)
        run("ip", "link", "set", netns, "master", self.bridge, "up")
        run("ip", "-n", netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")
        run("ip", "-n", netns, "route", "add", "default", "via", self.gateway)
        self._seed(host, etc_hosts)
        merged, upper, work = (host.root / d for d in ("merged", "upper", "work"))
        for d in (merged, work):
            d.mkdir(parents=True, exist_ok=True)
        script = (
            "mount --make-rprivate /;"
            f" mount -t overlay overlay -o lowerdir={base},upperdir={upper},workdir={work} {merged};"
            f" mount -t proc proc {merged}/proc; mount -t sysfs sys {merged}/sys;"
            f" {_cgroup_mounts(merged / 'sys/fs/cgroup')} mount -t tmpfs tmpfs {merged}/run;"
            f" mount --rbind /dev {merged}/dev; hostname {name};"
            f" exec chroot {merged} /lib/systemd/systemd --system --log-target=journal"
        )
        log = open(host.root / "boot.log", "w")  # noqa: SIM115 - lives as long as the host
        host.unshare = subprocess.Popen(
            ["sh", "-euc", f"{_join_own_cgroups(netns)} exec \"$@\"", "boot",
             "nsenter", f"--net=/run/netns/{netns}", "unshare", "--fork", "--pid", "--mount", "--uts", "--cgroup",
             "--", "sh", "-euc", script],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "container": "lab"},
        )
        host.pid = self._child_pid(host)
        return host

    def _seed(self, host: Host, etc_hosts: str) -> None:
        """What cloud-init would write: hostname, /etc/hosts of the lab, the admin user's key."""
        upper = host.root / "upper"
        (upper / "etc").mkdir(parents=True, exist_ok=True)
        (upper / "etc/hostname").write_text(host.name + "\n")
        (upper / "etc/hosts").write_text(etc_hosts)
        # This machine denies user namespaces to the hosts' systemd, which units with PrivateUsers=
        # (Debian's redis-server) need: a real VM has them. Every other sandboxing option stays on.
        dropin = upper / "etc/systemd/system/service.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "10-lab-no-userns.conf").write_text("[Service]\nPrivateUsers=no\n")
        ssh_dir = upper / "home" / ADMIN_USER / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        (upper / "home" / ADMIN_USER).chmod(0o755)
        ssh_dir.chmod(0o700)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(self.key.with_suffix(".pub").read_text())
        keys.chmod(0o600)
        for p in (ssh_dir.parent, ssh_dir, keys):
            os.chown(p, 1000, 1000)  # the admin user, first user of the base

    def _child_pid(self, host: Host) -> int:
        assert host.unshare is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                children = Path(f"/proc/{host.unshare.pid}/task/{host.unshare.pid}/children").read_text().split()
                if children:
                    return int(children[0])
            if host.unshare.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{host.name} did not start: {(host.root / 'boot.log').read_text()[-2000:]}")

    def _wait_up(self, host: Host, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = host.nsenter("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded") and _port_open(host.address, 22):
                return
            if host.unshare is not None and host.unshare.poll() is not None:
                break
            time.sleep(0.3)
        failed = host.nsenter("systemctl", "--failed", "--no-legend", check=False).stdout
        raise RuntimeError(f"{host.name} did not come up ({failed.strip()}):"
                           f" {(host.root / 'boot.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """Power every host off and remove its namespace and files; safe to call twice."""
        for host in self.hosts:
            _power_off(host)
            run("ip", "netns", "del", host.netns, check=False)
            _remove_cgroups(host.netns)
            _remove_unmounted(host.root)
        self.hosts.clear()
        run("ip", "link", "del", self.bridge, check=False)

    def inventory(self, groups: dict[str, list[str]]) -> str:
        """An Ansible INI inventory of the lab's hosts in the given groups (group -> host names)."""
        by_name = {h.name: h for h in self.hosts}
        lines = []
        for group, names in groups.items():
            lines.append(f"[{group}]")
            lines += [f"{n} ansible_host={by_name[n].address}" for n in names]
            lines.append("")
        lines += [
            "[all:vars]",
            f"ansible_user={ADMIN_USER}",
            f"ansible_ssh_private_key_file={self.key}",
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
        ]
        return "\n".join(lines) + "\n"


def _power_off(host: Host) -> None:
    proc = host.unshare
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(host.pid, signal.SIGRTMIN + 4)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # Killing PID 1 of the namespace takes every process of the host with it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(host.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _port_open(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((address, port)) == 0


@contextlib.contextmanager
def running_lab(workdir: Path, names: list[str], gateway_names: tuple[str, ...] = ()) -> Iterator[Lab]:
    lab = Lab(workdir)
    try:
        lab.start(names, build_base(), gateway_names)
        yield lab
    finally:
        lab.stop()
