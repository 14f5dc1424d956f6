"""The whole estate for one stack: network, cluster, data stores, edge, workload, monitoring, backups."""

from __future__ import annotations

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_kubernetes as k8s

from infra.components.backups import Backups, BackupsArgs
from infra.components.cache import Cache, CacheArgs
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.database import Database, DatabaseArgs
from infra.components.edge import Edge, EdgeArgs
from infra.components.logging import Logging, LoggingArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.notifications import Notifications, NotificationsArgs
from infra.components.workload import Workload, WorkloadArgs
from infra.config import StackConfig

INGRESS_SERVICE = "kube-system/ingress-nginx-controller"  # created by the cluster's ingress-nginx add-on


def build(config: StackConfig) -> None:
    name = f"chatwizard-{config.environment}"
    tags = config.tags
    cloudflare_ranges = cloudflare.get_ip_ranges_output()
    network = Network(
        name,
        NetworkArgs(
            cidr=config.vpc_cidr,
            zones=config.availability_zones,
            nat_gateway_per_zone=config.nat_gateway_per_zone,
            edge_cidrs=cloudflare_ranges.ipv4_cidrs,
            tags=tags,
        ),
    )
    notifications = Notifications(
        name,
        NotificationsArgs(
            email=str(config.alert_email), monthly_budget_usd=config.monthly_budget_usd, tags=tags
        ),
    )
    cluster = Cluster(
        name,
        ClusterArgs(
            version=config.cluster_version,
            subnet_ids=network.private_subnet_ids,
            node_security_group_id=network.node_security_group.id,
            edge_security_group_id=network.edge_security_group.id,
            public_access_cidrs=config.cluster_public_access_cidrs,
            instance_types=config.node_instance_types,
            min_size=config.node_min_size,
            desired_size=config.node_desired_size,
            max_size=config.node_max_size,
            tags=tags,
        ),
    )
    database = Database(
        name,
        DatabaseArgs(
            engine_version=config.db_engine_version,
            instance_class=config.db_instance_class,
            replica_instance_class=config.db_replica_instance_class,
            allocated_storage_gb=config.db_allocated_storage_gb,
            max_allocated_storage_gb=config.db_max_allocated_storage_gb,
            multi_az=config.db_multi_az,
            read_replicas=config.db_read_replicas,
            backup_retention_days=config.db_backup_retention_days,
            deletion_protection=config.db_deletion_protection,
            password=config.secret("db_password"),
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.database_security_group.id,
            alarm_topic_arn=notifications.topic.arn,
            tags=tags,
        ),
    )
    cache = Cache(
        name,
        CacheArgs(
            node_type=config.cache_node_type,
            replicas=config.cache_replicas,
            snapshot_retention_days=config.cache_snapshot_retention_days,
            auth_token=config.secret("redis_auth_token"),
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.cache_security_group.id,
            tags=tags,
        ),
    )
    backups = Backups(
        name,
        BackupsArgs(
            retention_days=config.backup_retention_days,
            object_lock_days=config.backup_object_lock_days,
            tags=tags,
        ),
    )
    ingress = k8s.core.v1.Service.get(
        f"{name}-ingress",
        INGRESS_SERVICE,
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster]),
    )
    edge = Edge(
        name,
        EdgeArgs(
            zone_id=config.cloudflare_zone_id,
            hostname=config.api_hostname,
            dashboard_hostname=config.dashboard_hostname,
            origin_hostname=ingress.status.load_balancer.ingress[0].hostname,
            rate_limit_per_minute=config.edge_rate_limit_per_minute,
        ),
    )
    Workload(
        name,
        WorkloadArgs(
            environment=config.environment,
            provider=cluster.provider,
            image=f"{config.app_image_repository}:{config.app_image_tag}",
            db_primary_host=database.primary_endpoint,
            db_replica_hosts=database.replica_endpoints,
            db_password=config.secret("db_password"),
            app_db_password=config.secret("app_db_password"),
            redis_host=cache.endpoint,
            redis_auth_token=config.secret("redis_auth_token"),
            app_secrets=config.app_secrets(),
            tls_certificate=edge.origin_certificate_pem,
            tls_key=edge.origin_private_key_pem,
        ),
    )
    monitoring = Monitoring(
        name,
        MonitoringArgs(
            provider=cluster.provider,
            dashboard_hostname=config.dashboard_hostname,
            health_url=f"{edge.url}/healthz",
            grafana_admin_password=config.secret("grafana_admin_password"),
            receiver_secrets={
                "smtp-password": config.secret("smtp_password"),
                "slack-webhook-url": config.secret("slack_webhook_url"),
                "pagerduty-routing-key": config.secret("pagerduty_routing_key"),
            },
            tls_certificate=edge.origin_certificate_pem,
            tls_key=edge.origin_private_key_pem,
        ),
    )

    Logging(name, LoggingArgs(provider=cluster.provider), pulumi.ResourceOptions(depends_on=[monitoring]))

    pulumi.export("api_url", edge.url)
    pulumi.export("dashboard_url", edge.dashboard_url)
    pulumi.export("database_primary_endpoint", database.primary_endpoint)
    pulumi.export("database_replica_endpoints", database.replica_endpoints)
    pulumi.export("redis_endpoint", cache.endpoint)
    pulumi.export("backup_bucket", backups.bucket.bucket)
    pulumi.export("cluster_name", cluster.cluster.name)
