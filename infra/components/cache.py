"""ElastiCache Redis: a replication group with TLS in transit, KMS at rest, an AUTH token from the
stack's secrets, automatic failover and Multi-AZ when there is a replica, and daily snapshots."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.ports import REDIS_PORT

TYPE = "chatwizard:infra:Cache"


@dataclass(frozen=True)
class CacheArgs:
    node_type: str
    replicas: int
    snapshot_retention_days: int
    auth_token: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    tags: dict[str, str]


class Cache(pulumi.ComponentResource):
    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-storage",
            description="ElastiCache at-rest encryption",
            enable_key_rotation=True,
            tags=args.tags,
            opts=child,
        )
        subnets = aws.elasticache.SubnetGroup(name, subnet_ids=args.subnet_ids, tags=args.tags, opts=child)
        failover = args.replicas > 0  # failover needs somewhere to fail over to
        self.group = aws.elasticache.ReplicationGroup(
            name,
            description="Chat Wizard cache, rate limits and activity",
            engine="redis",
            engine_version="7.1",
            node_type=args.node_type,
            port=REDIS_PORT,
            num_node_groups=1,
            replicas_per_node_group=args.replicas,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=args.auth_token,
            subnet_group_name=subnets.name,
            security_group_ids=[args.security_group_id],
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window="01:00-02:00",
            maintenance_window="sun:04:30-sun:05:30",
            auto_minor_version_upgrade=True,
            parameter_group_name="default.redis7",
            apply_immediately=False,
            tags=args.tags,
            opts=child,
        )
        self.endpoint = self.group.primary_endpoint_address
        self.register_outputs({"endpoint": self.endpoint})
