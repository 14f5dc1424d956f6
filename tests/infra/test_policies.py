"""The policy pack passes on both stacks as the program declares them, and each policy catches the
mistake it exists for."""

from __future__ import annotations

import copy
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from infra.policy import policies as p

from .conftest import Stack


def resource_args(resource: dict[str, Any], config: dict | None = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource["type"], resource["inputs"], resource["urn"], resource["name"], None, None, config
    )


def stack_args(resources: list[dict[str, Any]]) -> StackValidationArgs:
    return StackValidationArgs(
        [
            PolicyResource(r["type"], r["inputs"], r["urn"], r["name"], None, None, None, [], {})
            for r in resources
        ]
    )


def violations(check, resource: dict[str, Any], config: dict | None = None) -> list[str]:
    found: list[str] = []
    check(resource_args(resource, config), lambda message, urn=None: found.append(message))
    return found


def stack_violations(check, resources: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    check(stack_args(resources), lambda message, urn=None: found.append(message))
    return found


def test_every_policy_passes_on_the_stack(stack: Stack):
    for _, _, check in p.RESOURCE_POLICIES:
        for resource in stack.resources:
            assert violations(check, resource) == [], (check.__name__, resource["urn"])
    for _, _, check in p.STACK_POLICIES:
        assert stack_violations(check, stack.resources) == [], check.__name__


def changed(stack: Stack, kind: str, change: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    resource = copy.deepcopy(stack.one(kind, name))
    resource["inputs"].update(change)
    return resource


def test_unencrypted_database_is_refused(production: Stack):
    bad = changed(production, p.RDS_INSTANCE, {"storageEncrypted": False}, "chatwizard-production-primary")
    assert violations(p.encryption_at_rest, bad)
    plain_redis = changed(production, p.REDIS_GROUP, {"transitEncryptionEnabled": False})
    assert violations(p.encryption_at_rest, plain_redis)


def test_bucket_without_encryption_is_refused(production: Stack):
    without = [r for r in production.resources if r["type"] != p.BUCKET_ENCRYPTION]
    assert stack_violations(p.every_bucket_encrypted, without)


def test_public_database_is_refused(production: Stack):
    bad = changed(production, p.RDS_INSTANCE, {"publiclyAccessible": True}, "chatwizard-production-replica-1")
    assert violations(p.no_public_data_stores, bad)


def test_short_backup_retention_is_refused(production: Stack):
    primary = production.one(p.RDS_INSTANCE, "chatwizard-production-primary")
    assert violations(p.backup_retention, primary, {"minimumDays": 30})  # production keeps 14
    assert not violations(p.backup_retention, primary, {"minimumDays": 14})
    short = changed(production, p.RDS_INSTANCE, {"backupRetentionPeriod": 3}, "chatwizard-production-primary")
    assert violations(p.backup_retention, short)
    short_copy = changed(production, p.RDS_BACKUP_REPLICATION, {"retentionPeriod": 3})
    assert violations(p.backup_retention, short_copy)


def test_replicated_backups_without_a_key_are_refused(production: Stack):
    bad = changed(production, p.RDS_BACKUP_REPLICATION, {"kmsKeyId": None})
    assert violations(p.encryption_at_rest, bad)


def test_production_database_without_deletion_protection_is_refused(production: Stack):
    bad = changed(production, p.RDS_INSTANCE, {"deletionProtection": False}, "chatwizard-production-primary")
    assert violations(p.production_deletion_protection, bad)


def test_production_without_replica_is_refused(production: Stack):
    without = [r for r in production.resources if not r["inputs"].get("replicateSourceDb")]
    assert stack_violations(p.production_read_replica, without)


def test_flexible_cloudflare_tls_is_refused(production: Stack):
    ssl = next(r for r in production.of_type(p.ZONE_SETTING) if r["inputs"]["settingId"] == "ssl")
    flexible = copy.deepcopy(ssl)
    flexible["inputs"]["value"] = "flexible"
    assert violations(p.cloudflare_tls_strict, flexible)
    without = [r for r in production.resources if r is not ssl]
    assert stack_violations(p.tls_settings_declared, without)


def test_world_open_security_group_is_refused(production: Stack):
    group = copy.deepcopy(
        next(g for g in production.of_type(p.SECURITY_GROUP) if g["name"].endswith("-database"))
    )
    group["inputs"].setdefault("ingress", []).append(
        {"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["0.0.0.0/0"]}
    )
    assert violations(p.no_world_open_security_groups, group)
    edge = copy.deepcopy(next(g for g in production.of_type(p.SECURITY_GROUP) if g["name"].endswith("-edge")))
    edge["inputs"]["ingress"][0]["cidrBlocks"] = ["0.0.0.0/0"]
    assert not violations(p.no_world_open_security_groups, edge)  # the edge is the one exception
