"""Point-in-time recovery on RDS, its backups replicated to a second region, and the keys a restore needs
kept at least as long as the backups that need them."""

from __future__ import annotations

from typing import Any

import yaml

from .conftest import ROOT, Stack, declared

RDS = "aws:rds/instance:Instance"
REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
KMS_KEY = "aws:kms/key:Key"
PROVIDER = "pulumi:providers:aws"


def settings(stack: Stack) -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"Pulumi.{stack.name}.yaml").read_text())["config"]


def provider_region(stack: Stack, resource: dict[str, Any]) -> str:
    """The region a resource is created in: its provider's, or the stack's for the default provider."""
    if resource["provider"] is None or "::default_" in resource["provider"]:
        return settings(stack)["aws:region"]
    urn = resource["provider"].rpartition("::")[0]
    return next(r for r in stack.of_type(PROVIDER) if r["urn"] == urn)["inputs"]["region"]


def test_point_in_time_recovery_is_on(stack: Stack):
    primary = stack.inputs(RDS, f"chatwizard-{stack.name}-primary")
    assert primary["backupRetentionPeriod"] == settings(stack)["chatwizard:dbBackupRetentionDays"] >= 1


def test_automated_backups_are_replicated_to_the_other_region(stack: Stack):
    primary = stack.one(RDS, f"chatwizard-{stack.name}-primary")
    replication = stack.one(REPLICATION)
    dr_region = settings(stack)["chatwizard:dbBackupReplicationRegion"]
    assert dr_region != settings(stack)["aws:region"] == provider_region(stack, primary)
    assert replication["inputs"]["sourceDbInstanceArn"] == primary["arn"]
    assert provider_region(stack, replication) == dr_region
    key = next(k for k in stack.of_type(KMS_KEY) if k["arn"] == replication["inputs"]["kmsKeyId"])
    assert provider_region(stack, key) == dr_region and f":{dr_region}:" in key["arn"]
    assert replication["inputs"]["retentionPeriod"] >= primary["inputs"]["backupRetentionPeriod"]


def backup_keys(stack: Stack) -> list[dict[str, Any]]:
    """The keys the primary's storage (hence its snapshots) and the replicated backups are encrypted with."""
    arns = {stack.inputs(RDS, f"chatwizard-{stack.name}-primary")["kmsKeyId"],
            stack.inputs(REPLICATION)["kmsKeyId"]}
    return [k for k in stack.of_type(KMS_KEY) if k["arn"] in arns]


def test_production_keeps_backups_and_their_keys_past_the_stack(production: Stack):
    primary = production.inputs(RDS, "chatwizard-production-primary")
    assert primary["deleteAutomatedBackups"] is False and primary["skipFinalSnapshot"] is False
    keys = backup_keys(production)
    assert len(keys) == 2
    for key in keys:
        assert key["options"] == {"protect": True, "retainOnDelete": True}, key["urn"]
        assert key["inputs"]["deletionWindowInDays"] == 30


def test_staging_leaves_nothing_behind():
    stack = declared("staging")
    assert stack.inputs(RDS, "chatwizard-staging-primary")["deleteAutomatedBackups"] is True
    assert all(key["options"] == {"protect": False, "retainOnDelete": False} for key in backup_keys(stack))


def test_field_keys_outlive_every_backup(stack: Stack):
    config = {k.removeprefix("chatwizard:"): v for k, v in settings(stack).items()}
    longest = max(config["dbBackupRetentionDays"], config["dbBackupReplicationRetentionDays"],
                  config["backupRetentionDays"] + 7)  # the bucket keeps noncurrent versions 7 days
    assert config["fieldKeyRetentionDays"] >= longest
    assert stack.outputs["field_key_retention_days"] == config["fieldKeyRetentionDays"]


def test_outputs_name_what_a_restore_starts_from(stack: Stack):
    primary = stack.one(RDS, f"chatwizard-{stack.name}-primary")
    assert stack.outputs["database_primary_identifier"] == primary["name"]  # the mock's identifier
    assert stack.outputs["database_backup_region"] == settings(stack)["chatwizard:dbBackupReplicationRegion"]
