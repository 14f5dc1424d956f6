"""The estate's guard rails, checked by `pulumi preview/up --policy-pack infra/policy` on every change.

Each policy is a plain function over a resource's (or the stack's) properties, so tests call them
directly on the resources the program declares. Properties use Pulumi's camelCase names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_BACKUP_REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
REDIS_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
KMS_KEY = "aws:kms/key:Key"
SNS_TOPIC = "aws:sns/topic:Topic"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
WORLD = {"0.0.0.0/0", "::/0"}
MINIMUM_BACKUP_DAYS = 7  # default of the backup-retention policy's `minimumDays` setting
TLS_VERSIONS = ["1.0", "1.1", "1.2", "1.3"]


def environment(props: Mapping[str, Any]) -> str | None:
    return (props.get("tags") or {}).get("environment")


def is_primary_database(args: ResourceValidationArgs) -> bool:
    return args.resource_type == RDS_INSTANCE and not args.props.get("replicateSourceDb")


def encryption_at_rest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props, kind = args.props, args.resource_type
    if kind == RDS_INSTANCE and not (props.get("storageEncrypted") and props.get("kmsKeyId")):
        report("RDS storage must be encrypted with a customer KMS key (storageEncrypted, kmsKeyId)", None)
    if (
        kind == RDS_INSTANCE
        and props.get("performanceInsightsEnabled")
        and not props.get("performanceInsightsKmsKeyId")
    ):
        report("Performance Insights data must be encrypted with a customer KMS key", None)
    if kind == RDS_BACKUP_REPLICATION and not props.get("kmsKeyId"):
        report("replicated RDS backups must be encrypted with a customer KMS key of their region", None)
    if kind == REDIS_GROUP and not (props.get("atRestEncryptionEnabled") and props.get("kmsKeyId")):
        report("ElastiCache must encrypt at rest with a customer KMS key", None)
    if kind == REDIS_GROUP and not props.get("transitEncryptionEnabled"):
        report("ElastiCache must encrypt in transit (TLS)", None)
    if kind == BUCKET_ENCRYPTION:
        rules = props.get("rules") or []
        if not any(
            r.get("applyServerSideEncryptionByDefault", {}).get("sseAlgorithm") == "aws:kms" for r in rules
        ):
            report("S3 buckets must default to SSE-KMS", None)
    if kind == KMS_KEY and not props.get("enableKeyRotation"):
        report("KMS keys must rotate (enableKeyRotation)", None)
    if kind == SNS_TOPIC and not props.get("kmsMasterKeyId"):
        report("SNS topics must be encrypted (kmsMasterKeyId)", None)
    if kind == EKS_CLUSTER and "secrets" not in {
        r for config in [props.get("encryptionConfig") or {}] for r in config.get("resources", [])
    }:
        report("EKS must envelope-encrypt Kubernetes secrets with KMS (encryptionConfig)", None)


def every_bucket_encrypted(args: StackValidationArgs, report: ReportViolation) -> None:
    kinds = [r.resource_type for r in args.resources]
    if kinds.count(BUCKET_ENCRYPTION) < kinds.count(BUCKET):
        report("every S3 bucket needs a server-side encryption configuration", None)


def no_public_data_stores(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if args.resource_type == RDS_INSTANCE and props.get("publiclyAccessible") is not False:
        report("RDS instances must set publiclyAccessible: false", None)
    if args.resource_type == REDIS_GROUP and not (
        props.get("subnetGroupName") and props.get("securityGroupIds")
    ):
        report("ElastiCache must live in the private subnets behind a security group", None)


def backup_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    minimum = args.get_config().get("minimumDays", MINIMUM_BACKUP_DAYS)
    if is_primary_database(args) and (args.props.get("backupRetentionPeriod") or 0) < minimum:
        report(f"database backups (point-in-time recovery) must be kept at least {minimum} days", None)
    if args.resource_type == RDS_BACKUP_REPLICATION and (args.props.get("retentionPeriod") or 0) < minimum:
        report(f"replicated database backups must be kept at least {minimum} days", None)
    if args.resource_type == BUCKET_LIFECYCLE:
        for rule in args.props.get("rules") or []:
            days = (rule.get("expiration") or {}).get("days")
            if days is not None and days < minimum:
                report(f"backup objects must be kept at least {minimum} days (rule {rule.get('id')})", None)


def production_deletion_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if not is_primary_database(args) or environment(props) != "production":
        return
    if not props.get("deletionProtection"):
        report("the production database must have deletionProtection", None)
    if props.get("skipFinalSnapshot", False):
        report("the production database must take a final snapshot (skipFinalSnapshot: false)", None)


def production_read_replica(args: StackValidationArgs, report: ReportViolation) -> None:
    databases = [r for r in args.resources if r.resource_type == RDS_INSTANCE]
    if not any(environment(r.props) == "production" for r in databases):
        return
    if not any(r.props.get("replicateSourceDb") for r in databases):
        report("production needs at least one read replica of the database", None)


def cloudflare_tls_strict(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != ZONE_SETTING:
        return
    setting, value = args.props.get("settingId"), args.props.get("value")
    if setting == "ssl" and value != "strict":
        report("Cloudflare SSL must be full (strict): the edge verifies the origin's certificate", None)
    if setting == "min_tls_version" and TLS_VERSIONS.index(str(value)) < TLS_VERSIONS.index("1.2"):
        report("Cloudflare must refuse TLS below 1.2", None)
    if setting == "always_use_https" and value != "on":
        report("Cloudflare must redirect HTTP to HTTPS", None)


def tls_settings_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    """The zone's owner (infra/facts.yaml) manages its TLS settings; another stack managing them too would
    fight it over the one zone they share."""
    from infra.facts import load

    declared = {r.props.get("settingId") for r in args.resources if r.resource_type == ZONE_SETTING}
    environments = {environment(r.props) for r in args.resources} - {None}
    if load().cloudflare_zone_owner not in environments:
        if declared:
            report(f"only the zone's owner stack may manage its settings: {sorted(declared)}", None)
        return
    for setting in ("ssl", "min_tls_version", "always_use_https"):
        if setting not in declared:
            report(f"the Cloudflare zone setting {setting} must be managed here", None)


def no_world_open_security_groups(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == SECURITY_GROUP_RULE:  # a rule declared on its own
        if WORLD & {args.props.get("cidrIpv4"), args.props.get("cidrIpv6")}:
            report(f"security group rule open to the world on port {args.props.get('fromPort')}", None)
        return
    if args.resource_type != SECURITY_GROUP or (args.props.get("tags") or {}).get("role") == "edge":
        return
    for rule in args.props.get("ingress") or []:
        if WORLD & set((rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or [])):
            report(
                f"security group open to the world on port {rule.get('fromPort')}: only the edge may be", None
            )


RESOURCE_POLICIES = [
    (
        "encryption-at-rest",
        "Data stores, buckets, keys and topics are encrypted with KMS",
        encryption_at_rest,
    ),
    ("no-public-data-stores", "No database or cache is reachable from the internet", no_public_data_stores),
    ("backup-retention", "Backups are kept at least the configured minimum", backup_retention),
    (
        "production-deletion-protection",
        "The production database cannot be deleted by accident",
        production_deletion_protection,
    ),
    (
        "cloudflare-tls-strict",
        "Cloudflare verifies the origin and speaks TLS 1.2+ only",
        cloudflare_tls_strict,
    ),
    (
        "no-world-open-security-groups",
        "Only the edge security group accepts the world",
        no_world_open_security_groups,
    ),
]
STACK_POLICIES = [
    ("every-bucket-encrypted", "Every bucket has an encryption configuration", every_bucket_encrypted),
    ("production-read-replica", "Production has at least one database read replica", production_read_replica),
    ("cloudflare-tls-declared", "The zone's TLS settings are managed in code", tls_settings_declared),
]
BACKUP_SCHEMA = PolicyConfigSchema(
    properties={"minimumDays": {"type": "integer", "minimum": 1, "default": MINIMUM_BACKUP_DAYS}}
)


def policies() -> list:
    mandatory = EnforcementLevel.MANDATORY
    return [
        *(
            ResourceValidationPolicy(
                name=name,
                description=description,
                validate=check,
                enforcement_level=mandatory,
                config_schema=BACKUP_SCHEMA if check is backup_retention else None,
            )
            for name, description, check in RESOURCE_POLICIES
        ),
        *(
            StackValidationPolicy(
                name=name, description=description, validate=check, enforcement_level=mandatory
            )
            for name, description, check in STACK_POLICIES
        ),
    ]
