"""The whole estate for one stack: network, cluster, data stores, edge, workload, monitoring, backups."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.components.backups import Backups, BackupsArgs
from infra.components.cache import Cache, CacheArgs
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.database import Database, DatabaseArgs, ca_bundle
from infra.components.edge import Edge, EdgeArgs
from infra.components.logging import Logging, LoggingArgs
from infra.components.mail import Mail, MailArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.notifications import Notifications, NotificationsArgs
from infra.components.runner import DeployRunner, DeployRunnerArgs
from infra.components.workload import APP_LOGIN, Workload, WorkloadArgs
from infra.config import StackConfig
from infra.facts import load as load_facts

# Created by the cluster's ingress-nginx add-on, in the namespace the NetworkPolicies admit.
INGRESS_SERVICE = f"{load_facts().namespaces['ingress']}/ingress-nginx-controller"
# The deploy runner runs `pulumi up` of the whole estate, which creates IAM roles, VPCs and clusters.
RUNNER_POLICIES = ["arn:aws:iam::aws:policy/AdministratorAccess"]


def build(config: StackConfig) -> None:
    name = f"chatwizard-{config.environment}"
    tags = config.tags
    facts = load_facts()
    region = pulumi.Config("aws").require("region")
    rds_ca_bundle = ca_bundle(region)
    network = Network(
        name,
        NetworkArgs(
            environment=config.facts,
            zones=config.availability_zones,
            nat_gateway_per_zone=config.nat_gateway_per_zone,
            edge_ipv4_cidrs=facts.cloudflare_ipv4,
            edge_ipv6_cidrs=facts.cloudflare_ipv6,
            tags=tags,
        ),
    )
    notifications = Notifications(
        name,
        NotificationsArgs(
            email=str(config.alert_email), monthly_budget_usd=config.monthly_budget_usd, tags=tags
        ),
    )
    runner = DeployRunner(
        name,
        DeployRunnerArgs(
            subnet_id=network.private_subnet_ids[0],
            vpc_id=network.vpc.id,
            region=region,
            instance_type=config.deploy_runner_instance_type,
            deploy_policy_arns=RUNNER_POLICIES,
            admin_ssh_keys=config.deploy_runner_ssh_keys,
            tags=tags,
        ),
    )
    cluster = Cluster(
        name,
        ClusterArgs(
            version=config.cluster_version,
            subnet_ids=network.private_subnet_ids,
            vpc_id=network.vpc.id,
            region=region,
            api_security_group_id=network.api_security_group.id,
            edge_security_group_id=network.edge_security_group.id,
            public_access_cidrs=config.cluster_public_access_cidrs,
            admin_role_arns=[*config.cluster_admin_role_arns, runner.role.arn],
            instance_types=config.node_instance_types,
            min_size=config.node_min_size,
            desired_size=config.node_desired_size,
            max_size=config.node_max_size,
            tags=tags,
        ),
    )
    network.admit("cluster", cluster.node_security_group_id)  # nodes and pods reach Postgres and Redis
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
            backup_replication_region=config.db_backup_replication_region,
            backup_replication_retention_days=config.db_backup_replication_retention_days,
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
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.ingress_release]),
    )
    owns_zone = facts.cloudflare_zone_owner == config.environment
    edge = Edge(
        name,
        EdgeArgs(
            zone_id=config.cloudflare_zone_id,
            environment=config.facts,
            origin_hostname=ingress.status.load_balancer.ingress[0].hostname,
            zone_environments=list(facts.environments.values()) if owns_zone else None,
        ),
    )
    mail = Mail(
        name,
        MailArgs(
            zone_id=config.cloudflare_zone_id,
            environment=config.facts,
            region=region,
            port=facts.ports["smtp_submission"],
            tags=tags,
        ),
    )
    monitoring = Monitoring(
        name,
        MonitoringArgs(
            provider=cluster.provider,
            dashboard_hostname=config.facts.dashboard_hostname,
            api_url=edge.url,
            probe_api_key=config.secret("probe_api_key") if config.probe_api_key else None,
            grafana_admin_password=config.secret("grafana_admin_password"),
            receiver_secrets={
                "smtp-password": config.secret("smtp_password"),
                "slack-webhook-url": config.secret("slack_webhook_url"),
                "pagerduty-routing-key": config.secret("pagerduty_routing_key"),
            },
            tls_certificate=edge.origin_certificate_pem,
            tls_key=edge.origin_private_key_pem,
            postgres_host=database.primary_endpoint,
            postgres_login=APP_LOGIN,
            postgres_password=config.secret("app_db_password"),
            redis_address=pulumi.Output.format("rediss://{0}:{1}", cache.endpoint, facts.ports["redis"]),
            redis_password=config.secret("redis_auth_token"),
            rds_ca_bundle=rds_ca_bundle,
            depends_on=[cluster.ingress_release, cluster.storage_class],
        ),
    )
    Workload(
        name,
        WorkloadArgs(
            environment=config.environment,
            provider=cluster.provider,
            image=config.app_image,
            db_primary_host=database.primary_endpoint,
            db_replica_hosts=database.replica_endpoints,
            db_password=config.secret("db_password"),
            app_db_password=config.secret("app_db_password"),
            redis_host=cache.endpoint,
            redis_auth_token=config.secret("redis_auth_token"),
            app_secrets={**config.app_secrets(), "CHATWIZARD_SMTP_PASSWORD": mail.password},
            app_config=mail.settings,
            tls_certificate=edge.origin_certificate_pem,
            tls_key=edge.origin_private_key_pem,
            rds_ca_bundle=rds_ca_bundle,
            # The CRDs of the PodMonitor and PrometheusRule, and of the Rollout and AnalysisTemplate; the
            # HPA's metric; the Ingress's admission.
            depends_on=[
                monitoring.release, cluster.rollouts_release, monitoring.releases["prometheus-adapter"],
                cluster.ingress_release,
            ],
        ),
    )

    Logging(name, LoggingArgs(provider=cluster.provider), pulumi.ResourceOptions(depends_on=[monitoring]))

    pulumi.export("api_url", edge.url)
    pulumi.export("dashboard_url", edge.dashboard_url)
    pulumi.export("database_primary_endpoint", database.primary_endpoint)
    pulumi.export("database_replica_endpoints", database.replica_endpoints)
    # What `python -m infra.restore` needs: the instance to restore and where its backups are replicated.
    pulumi.export("database_primary_identifier", database.primary.identifier)
    pulumi.export("database_backup_region", config.db_backup_replication_region)
    pulumi.export("field_key_retention_days", config.field_key_retention_days)
    pulumi.export("redis_endpoint", cache.endpoint)
    pulumi.export("backup_bucket", backups.bucket.bucket)
    pulumi.export("cluster_name", cluster.cluster.name)
    pulumi.export("app_image", config.app_image)  # what runs: pass it back to keep it (docs/deploy.md)
    # ansible/pulumi_inventory.py: group -> private addresses, the inventory of the hosts outside Kubernetes.
    pulumi.export("ansibleInventory", {"deploy_runner": [runner.instance.private_ip]})
    pulumi.export("deployRunnerInstanceId", runner.instance.id)  # SSH over SSM targets the instance
