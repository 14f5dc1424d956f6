"""An S3 bucket for the logical dumps an operator takes (runbooks/operations-manual.md): versioned,
KMS-encrypted, never public, expiring old versions by lifecycle rules, and optionally under object lock
(compliance mode) against deletion. Nothing writes to it on a schedule: the database's own backups are
RDS automated backups with point-in-time recovery (components/database.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

TYPE = "chatwizard:infra:Backups"
NONCURRENT_VERSION_DAYS = 7  # how long an overwritten or deleted dump stays recoverable


@dataclass(frozen=True)
class BackupsArgs:
    retention_days: int
    object_lock_days: int  # 0: no object lock
    tags: dict[str, str]


class Backups(pulumi.ComponentResource):
    def __init__(self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-backups",
            description="Backup bucket encryption",
            enable_key_rotation=True,
            tags=args.tags,
            opts=child,
        )
        self.bucket = aws.s3.Bucket(
            name,
            object_lock_enabled=args.object_lock_days > 0,
            tags=args.tags,
            force_destroy=False,
            opts=child,
        )
        of_bucket = pulumi.ResourceOptions(parent=self.bucket)
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=of_bucket,
        )
        aws.s3.BucketVersioning(
            name, bucket=self.bucket.id, versioning_configuration={"status": "Enabled"}, opts=of_bucket
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            opts=of_bucket,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
        )
        aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=self.bucket.id,
            opts=of_bucket,
            rules=[
                {
                    "id": "expire-backups",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}]
                    if args.retention_days > 30
                    else [],
                    "expiration": {"days": args.retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                },
            ],
        )
        if args.object_lock_days:
            aws.s3.BucketObjectLockConfiguration(
                name,
                bucket=self.bucket.id,
                opts=of_bucket,
                rule={"default_retention": {"mode": "COMPLIANCE", "days": args.object_lock_days}},
            )
        self.register_outputs({"bucket": self.bucket.bucket})
