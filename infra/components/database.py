"""RDS PostgreSQL with pgvector: KMS-encrypted, TLS enforced (`rds.force_ssl`), Performance Insights,
point-in-time recovery with its automated backups replicated to a second region (KMS-encrypted there by
a key of that region), storage autoscaling, and encrypted read replicas with a replica-lag alarm.
With deletion protection (production), deleting the stack keeps what a restore needs: the final snapshot,
the automated backups, and the KMS keys they are encrypted with (`retain_on_delete`; KMS itself would
delete a key 30 days after it is scheduled, long before the backups expire).
The app reaches it through PgBouncer (k8s/base/pgbouncer.yaml), migrations directly; both verify the
server against the region's RDS certificate bundle (`ca_bundle`), which no system trust store carries.
pgvector is enabled by the app's first migration (`CREATE EXTENSION vector`), which RDS PostgreSQL 15.2+
allows."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from cryptography import x509

from infra.ports import POSTGRES_PORT

TYPE = "chatwizard:infra:Database"
REPLICA_LAG_ALARM_S = 30  # the app itself stops reading from a replica past CHATWIZARD_REPLICA_MAX_LAG_S

OWNER_LOGIN = "chatwizard"  # the RDS master user: owns the schema; only migrations log in as it
# The certificate authorities RDS signs its server certificates with, per region:
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
CA_BUNDLE_FILE = "rds-ca-bundle.pem"  # the key of the `rds-ca` ConfigMaps that PgBouncer and migrations mount


def ca_bundle(region: str) -> str:
    """The region's RDS CA bundle, fetched when the program runs and checked to be certificates."""
    with urllib.request.urlopen(CA_BUNDLE_URL.format(region=region), timeout=30) as response:  # noqa: S310
        text = response.read().decode()
    if not x509.load_pem_x509_certificates(text.encode()):
        raise pulumi.RunError(f"{CA_BUNDLE_URL.format(region=region)} holds no certificate")
    return text


@dataclass(frozen=True)
class DatabaseArgs:
    engine_version: str
    instance_class: str
    replica_instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    read_replicas: int
    backup_retention_days: int
    backup_replication_region: str
    backup_replication_retention_days: int
    deletion_protection: bool
    password: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    tags: dict[str, str]


class Database(pulumi.ComponentResource):
    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = self._backup_key(
            f"{name}-storage", "RDS storage, its backups and Performance Insights", args
        )
        subnets = aws.rds.SubnetGroup(name, subnet_ids=args.subnet_ids, tags=args.tags, opts=child)
        major = args.engine_version.split(".")[0]
        parameters = aws.rds.ParameterGroup(
            name,
            family=f"postgres{major}",
            tags=args.tags,
            opts=child,
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {
                    "name": "shared_preload_libraries",
                    "value": "pg_stat_statements",
                    "apply_method": "pending-reboot",
                },
                {"name": "log_min_duration_statement", "value": "500"},
            ],
        )
        monitoring_role = aws.iam.Role(
            f"{name}-monitoring",
            tags=args.tags,
            opts=child,
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                        }
                    ],
                }
            ),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=monitoring_role.name,
            opts=pulumi.ResourceOptions(parent=monitoring_role),
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
        )
        common = {
            "parameter_group_name": parameters.name,
            "vpc_security_group_ids": [args.security_group_id],
            "publicly_accessible": False,
            "storage_encrypted": True,
            "kms_key_id": self.key.arn,
            "performance_insights_enabled": True,
            "performance_insights_kms_key_id": self.key.arn,
            "monitoring_interval": 30,
            "monitoring_role_arn": monitoring_role.arn,
            "deletion_protection": args.deletion_protection,
            "auto_minor_version_upgrade": True,
            "max_allocated_storage": args.max_allocated_storage_gb,
            "port": POSTGRES_PORT,
            "enabled_cloudwatch_logs_exports": ["postgresql"],
            "tags": args.tags,
        }
        self.primary = aws.rds.Instance(
            f"{name}-primary",
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            storage_type="gp3",
            db_name="chatwizard",
            username=OWNER_LOGIN,
            password=args.password,
            db_subnet_group_name=subnets.name,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            delete_automated_backups=not args.deletion_protection,  # kept past the instance: PITR still works
            backup_window="02:00-03:00",
            maintenance_window="sun:03:30-sun:04:30",
            copy_tags_to_snapshot=True,
            skip_final_snapshot=not args.deletion_protection,
            final_snapshot_identifier=f"{name}-final" if args.deletion_protection else None,
            **common,
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )
        self.backup_replication = self._replicate_backups(name, args)
        self.replicas = [
            self._replica(f"{name}-replica-{index}", args, common)
            for index in range(1, args.read_replicas + 1)
        ]
        self.primary_endpoint = self.primary.address
        self.replica_endpoints = [replica.address for replica in self.replicas]
        self.register_outputs(
            {"primary_endpoint": self.primary_endpoint, "replica_endpoints": self.replica_endpoints}
        )

    def _backup_key(
        self, name: str, description: str, args: DatabaseArgs, provider: aws.Provider | None = None
    ) -> aws.kms.Key:
        """A key that backups are encrypted with: with deletion protection, it outlives the stack."""
        return aws.kms.Key(
            name,
            description=description,
            enable_key_rotation=True,
            deletion_window_in_days=30,  # the longest KMS allows: time to cancel a mistaken deletion
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self, provider=provider, protect=args.deletion_protection,
                retain_on_delete=args.deletion_protection,
            ),
        )

    def _replicate_backups(
        self, name: str, args: DatabaseArgs
    ) -> aws.rds.InstanceAutomatedBackupsReplication:
        """The primary's automated backups (snapshots and transaction logs) copied to the second region, so
        a point-in-time restore survives the loss of the first (docs/deploy.md, "Restore (AWS)")."""
        region = args.backup_replication_region
        provider = aws.Provider(f"{name}-{region}", region=region, opts=pulumi.ResourceOptions(parent=self))
        key = self._backup_key(f"{name}-backups-{region}", "RDS automated backups replicated", args, provider)
        return aws.rds.InstanceAutomatedBackupsReplication(
            f"{name}-backups-{region}",
            source_db_instance_arn=self.primary.arn,
            kms_key_id=key.arn,
            retention_period=args.backup_replication_retention_days,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )

    def _replica(self, name: str, args: DatabaseArgs, common: dict) -> aws.rds.Instance:
        """An encrypted read replica with its own lag alarm (backups stay on the primary)."""
        replica = aws.rds.Instance(
            name,
            replicate_source_db=self.primary.identifier,
            instance_class=args.replica_instance_class,
            skip_final_snapshot=True,
            **common,
            opts=pulumi.ResourceOptions(parent=self.primary),
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-lag",
            namespace="AWS/RDS",
            metric_name="ReplicaLag",
            dimensions={"DBInstanceIdentifier": replica.identifier},
            statistic="Maximum",
            period=60,
            evaluation_periods=3,
            threshold=REPLICA_LAG_ALARM_S,
            comparison_operator="GreaterThanThreshold",
            alarm_actions=[args.alarm_topic_arn],
            ok_actions=[args.alarm_topic_arn],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=replica),
        )
        return replica
