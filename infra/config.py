"""The stack configuration, typed and validated before any resource is declared.

Every key lives in the `chatwizard:` namespace of `Pulumi.<stack>.yaml` and is documented in
infra/README.md. Errors name the key, e.g. ``chatwizard:dbReadReplicas: Input should be a valid integer``.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from typing import Annotated, Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra.components.backups import NONCURRENT_VERSION_DAYS
from infra.facts import Environment
from infra.facts import load as load_facts

NAMESPACE = "chatwizard"

PositiveInt = Annotated[int, Field(ge=1)]
# An image by content: registry/path@sha256 and 64 lower-case hex digits (the OCI digest form).
PATH_PART = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
IMAGE_DIGEST = rf"^{PATH_PART}(?::\d+)?(?:/{PATH_PART})+@sha256:[0-9a-f]{{64}}$"


class StackConfigError(pulumi.RunError):
    """Raised with one line per bad key; pulumi prints it without a traceback."""


class StackConfig(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)

    environment: Literal["staging", "production"]
    # Edge (Cloudflare)
    domain: str = Field(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")
    cloudflare_zone_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    # Network (the VPC range and hostnames are facts of the environment: infra/facts.yaml)
    availability_zones: list[str] = Field(min_length=3, max_length=3)
    nat_gateway_per_zone: bool
    # Cluster
    cluster_version: str = Field(pattern=r"^1\.\d+$")
    cluster_public_access_cidrs: list[IPv4Network] = []
    cluster_admin_role_arns: list[Annotated[str, Field(pattern=r"^arn:aws:iam::\d{12}:role/.+$")]] = []
    # The deploy runner (components/runner.py): its size, and the first Ansible run's admin keys
    deploy_runner_instance_type: str = Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    deploy_runner_ssh_keys: list[Annotated[str, Field(pattern=r"^ssh-(ed25519|rsa) ")]] = []
    node_instance_types: list[str] = Field(min_length=1)
    node_min_size: PositiveInt
    node_desired_size: PositiveInt
    node_max_size: PositiveInt
    # Workload
    app_image_repository: str
    app_image_tag: str = Field(pattern=r"^[\w][\w.-]{0,127}$")
    # The release pipeline's image, `<appImageRepository>@sha256:<digest>` (`make deploy DIGEST=...`): what
    # was built and tested is what runs. Unset only before the pipeline's first release: then the tag.
    app_image_digest: str | None = Field(default=None, pattern=IMAGE_DIGEST)
    # Database (RDS PostgreSQL)
    db_engine_version: str
    db_instance_class: str = Field(pattern=r"^db\.")
    db_replica_instance_class: str = Field(pattern=r"^db\.")
    db_allocated_storage_gb: Annotated[int, Field(ge=20)]
    db_max_allocated_storage_gb: Annotated[int, Field(ge=20)]
    db_multi_az: bool
    db_read_replicas: Annotated[int, Field(ge=0, le=5)]
    db_backup_retention_days: Annotated[int, Field(ge=1, le=35)]  # ≥ 1: point-in-time recovery is on
    # Automated backups copied to a second region (region loss); at least as long as the primary's.
    db_backup_replication_region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    db_backup_replication_retention_days: Annotated[int, Field(ge=1, le=35)]
    db_deletion_protection: bool
    db_password: SecretStr = Field(min_length=16)
    app_db_password: SecretStr = Field(min_length=16)
    # Cache (ElastiCache Redis)
    cache_node_type: str = Field(pattern=r"^cache\.")
    cache_replicas: Annotated[int, Field(ge=0, le=5)]
    cache_snapshot_retention_days: Annotated[int, Field(ge=0, le=35)]
    redis_auth_token: SecretStr = Field(min_length=16, max_length=128)
    # Backups (S3)
    backup_retention_days: PositiveInt
    backup_object_lock_days: Annotated[int, Field(ge=0)] = 0
    # Monitoring and cost
    monthly_budget_usd: Annotated[float, Field(gt=0)]
    alert_email: EmailStr
    # App and receiver secrets
    openai_api_key: SecretStr
    field_keys: SecretStr
    # Days a retired field key stays in the ring after `chatwizard reencrypt` moved every row off it:
    # every backup taken before then still holds values only that key opens.
    field_key_retention_days: PositiveInt
    sentry_dsn: SecretStr | None = None
    slack_webhook_url: SecretStr
    pagerduty_routing_key: SecretStr
    smtp_password: SecretStr
    grafana_admin_password: SecretStr = Field(min_length=16)
    probe_api_key: SecretStr | None = None  # the authenticated uptime probe's key, once made (README)

    @model_validator(mode="after")
    def _consistent_sizes(self) -> StackConfig:
        if not self.node_min_size <= self.node_desired_size <= self.node_max_size:
            raise ValueError("nodeMinSize <= nodeDesiredSize <= nodeMaxSize must hold")
        if self.db_max_allocated_storage_gb < self.db_allocated_storage_gb:
            raise ValueError("dbMaxAllocatedStorageGb must be at least dbAllocatedStorageGb")
        if self.app_image_digest and self.app_image_digest.split("@")[0] != self.app_image_repository:
            raise ValueError("appImageDigest must name an image in appImageRepository")
        return self

    @model_validator(mode="after")
    def _backups_recoverable(self, info: ValidationInfo) -> StackConfig:
        region = (info.context or {}).get("region")
        if self.db_backup_replication_region == region:
            raise ValueError(f"dbBackupReplicationRegion must be another region than aws:region ({region})")
        if self.db_backup_replication_retention_days < self.db_backup_retention_days:
            raise ValueError("dbBackupReplicationRetentionDays must be at least dbBackupRetentionDays")
        # The windows all start when a backup is taken, so the longest one decides, not their sum.
        if self.field_key_retention_days < self.longest_backup_days:
            raise ValueError(
                f"fieldKeyRetentionDays must be at least {self.longest_backup_days}, the longest any backup "
                "is kept (dbBackupRetentionDays, dbBackupReplicationRetentionDays, backupRetentionDays + "
                f"{NONCURRENT_VERSION_DAYS} days of noncurrent versions): a restored backup needs its keys"
            )
        return self

    @property
    def longest_backup_days(self) -> int:
        """The longest a backup holding field-encrypted values is kept, in days."""
        return max(
            self.db_backup_retention_days,
            self.db_backup_replication_retention_days,
            self.backup_retention_days + NONCURRENT_VERSION_DAYS,
        )

    @property
    def app_image(self) -> str:
        """The app's image: by digest once the release pipeline deploys, else by tag."""
        return self.app_image_digest or f"{self.app_image_repository}:{self.app_image_tag}"

    @property
    def facts(self) -> Environment:
        """This environment's shared facts: VPC range, hostnames, edge rate limit."""
        return load_facts().environments[self.environment]

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every AWS resource; the policies read `environment` from them."""
        return {"project": NAMESPACE, "environment": self.environment, "managed-by": "pulumi"}

    def secret(self, name: str) -> pulumi.Output[str]:
        value: SecretStr | None = getattr(self, name)
        return pulumi.Output.secret(value.get_secret_value() if value else "")

    def app_secrets(self) -> dict[str, pulumi.Output[str]]:
        """The app's secret settings (README "Configuration"), by environment variable."""
        secrets = {
            "OPENAI_API_KEY": self.secret("openai_api_key"),
            "CHATWIZARD_FIELD_KEYS": self.secret("field_keys"),
        }
        if self.sentry_dsn:
            secrets["CHATWIZARD_SENTRY_DSN"] = self.secret("sentry_dsn")
        return secrets


def _raw_values() -> dict[str, Any]:
    """Every `chatwizard:` key the stack sets."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values = {}
    for full_key, text in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        # Lists arrive as JSON text; scalars stay text for pydantic to parse, so a tag "1234" stays a string.
        values[key] = json.loads(text) if text.startswith(("[", "{")) else text
    return values


def describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(stack)"
        lines.append(f"{NAMESPACE}:{key}: {problem['msg']}")
    return "invalid stack configuration:\n  " + "\n  ".join(lines)


def load() -> StackConfig:
    try:
        region = pulumi.Config("aws").get("region")
        return StackConfig.model_validate(_raw_values(), context={"region": region})
    except ValidationError as error:
        raise StackConfigError(describe(error)) from None
