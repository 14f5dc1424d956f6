"""Point-in-time restore of the RDS primary into a new instance, its checks, and the switch to it:
production's drill and its procedure (docs/deploy.md, "Restore (AWS)").

    python -m infra.restore --region us-east-1 --source ID --time 2026-12-02T10:15:00Z [--switch] [--dry-run]
    python -m infra.restore --region us-west-2 --source ID --latest --from-replicated-backups [--dry-run]

ID is the stack output `database_primary_identifier`. The restored instance copies the source's network,
parameter group, class, storage and tags; `--from-replicated-backups` restores in the backup region
(`database_backup_region`) from the copies `InstanceAutomatedBackupsReplication` keeps there, for when
the first region is gone (that region's subnet group and security groups are options: the stack has none
there). `--switch` then hands the restored instance the source's identifier, and with it the endpoint
that PgBouncer, migrations and the RDS certificate name: the source and its read replicas are renamed
`<identifier>-before-<time>` (kept, for comparison), and new read replicas of the restored instance take
the replicas' identifiers; `--pulumi-state FILE` (`pulumi stack export --file FILE` first) then points
the stack's state at them. `--dry-run` checks everything against AWS and prints what it would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import boto3
from botocore.exceptions import BotoCoreError, ClientError

IDENTIFIER = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")  # RDS's rule for instance names
# Settings a restored instance or a new read replica takes from the one it replaces (RDS would otherwise
# use its defaults: the default VPC, the default parameter group without rds.force_ssl, ...).
COPIED = ("DBInstanceClass", "MultiAZ", "StorageType", "CopyTagsToSnapshot", "DeletionProtection",
          "BackupRetentionPeriod", "PubliclyAccessible", "MaxAllocatedStorage", "AutoMinorVersionUpgrade")
RESTORE = "RestoreDBInstanceToPointInTime"
READ_REPLICA = "CreateDBInstanceReadReplica"
RDS_INSTANCE = "aws:rds/instance:Instance"  # its type in Pulumi's state
# --check-data's login: a postgresql:// URL; {host} in it stands for the restored endpoint (without it, the
# URL is used as it is: a tunnel to the instance).
CHECK_URL = "RESTORE_CHECK_DATABASE_URL"


class RestoreError(Exception):
    """Bad input or a state of AWS the restore cannot go on from; the message says which."""


@dataclass(frozen=True)
class Source:
    identifier: str
    reference: dict[str, str]  # how RestoreDBInstanceToPointInTime names it
    earliest: datetime
    latest: datetime
    settings: dict[str, Any] = field(default_factory=dict)  # what the restored instance copies
    replicas: tuple[str, ...] = ()
    resource_id: str = ""  # RDS's immutable id of the instance, which Pulumi's state knows it by


@dataclass(frozen=True)
class Waiting:
    """How long to wait for an instance to become available (a restore of a large database takes hours)."""

    poll_s: float = 30.0
    timeout_s: float = 4 * 3600.0


def instance(rds: Any, identifier: str) -> dict[str, Any] | None:
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    except ClientError as error:
        if error.response["Error"]["Code"] == "DBInstanceNotFound":
            return None
        raise


def source_instance(rds: Any, identifier: str) -> Source:
    """The instance to restore, in its own region: its restorable window, settings and read replicas."""
    found = instance(rds, identifier)
    if found is None:
        raise RestoreError(f"no DB instance {identifier!r} in {rds.meta.region_name}")
    if not found.get("BackupRetentionPeriod"):
        raise RestoreError(f"{identifier} keeps no automated backups: it has no point-in-time recovery")
    window = automated_backups(rds, lambda b: b.get("DbiResourceId") == found.get("DbiResourceId"))
    earliest = (window[0].get("RestoreWindow") or {}).get("EarliestTime") if window else None
    retention_start = datetime.now(UTC) - timedelta(days=found["BackupRetentionPeriod"])
    return Source(
        identifier=identifier,
        reference={"SourceDBInstanceIdentifier": identifier},
        earliest=earliest or max(found["InstanceCreateTime"], retention_start),
        latest=found["LatestRestorableTime"],
        settings=accepted(rds, RESTORE, settings_of(found)),
        replicas=tuple(found.get("ReadReplicaDBInstanceIdentifiers", [])),
        resource_id=found["DbiResourceId"],
    )


def settings_of(found: dict[str, Any]) -> dict[str, Any]:
    """An instance's settings, named as the create and restore calls name them."""
    return {
        **{key: found[key] for key in COPIED if key in found},
        "DBSubnetGroupName": found.get("DBSubnetGroup", {}).get("DBSubnetGroupName"),
        "VpcSecurityGroupIds": [g["VpcSecurityGroupId"] for g in found.get("VpcSecurityGroups", [])],
        "DBParameterGroupName": next(
            (g["DBParameterGroupName"] for g in found.get("DBParameterGroups", [])), None
        ),
        "EnableCloudwatchLogsExports": found.get("EnabledCloudwatchLogsExports", []),
        "Tags": found.get("TagList", []),
    }


def accepted(rds: Any, operation: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that `operation` takes, leaving out unset ones."""
    members = rds.meta.service_model.operation_model(operation).input_shape.members
    return {key: value for key, value in settings.items() if key in members and value not in (None, [])}


def automated_backups(rds: Any, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    pages = rds.get_paginator("describe_db_instance_automated_backups").paginate()
    return [b for page in pages for b in page["DBInstanceAutomatedBackups"] if wanted(b)]


def replicated_backups(rds: Any, identifier: str, network: dict[str, Any]) -> Source:
    """The copies of `identifier`'s automated backups in this (the backup) region."""
    copies = automated_backups(
        rds, lambda b: b["DBInstanceIdentifier"] == identifier and "RestoreWindow" in b
    )
    if not copies:
        raise RestoreError(
            f"no replicated automated backups of {identifier!r} in {rds.meta.region_name}: is it the stack's "
            "dbBackupReplicationRegion (stack output database_backup_region), and the identifier the "
            "stack output database_primary_identifier?"
        )
    newest = max(copies, key=lambda b: b["RestoreWindow"]["LatestTime"])
    return Source(
        identifier=identifier,
        reference={"SourceDBInstanceAutomatedBackupsArn": newest["DBInstanceAutomatedBackupsArn"]},
        earliest=newest["RestoreWindow"]["EarliestTime"],
        latest=newest["RestoreWindow"]["LatestTime"],
        settings={"Tags": newest.get("TagList", []), **network},
    )


def point_in_time(source: Source, when: datetime | None) -> dict[str, Any]:
    """RestoreTime (or the latest restorable time when `when` is None), checked against the window."""
    if when is None:
        return {"UseLatestRestorableTime": True}
    if when.tzinfo is None:
        raise RestoreError(f"--time {when.isoformat()} has no time zone: add Z for UTC, or +02:00 ...")
    if not source.earliest <= when <= source.latest:
        raise RestoreError(
            f"{when.isoformat()} is outside {source.identifier}'s restorable window: "
            f"{source.earliest.isoformat()} to {source.latest.isoformat()}"
        )
    return {"RestoreTime": when}


def restore_request(source: Source, target: str, when: datetime | None) -> dict[str, Any]:
    tags = [t for t in source.settings.get("Tags", []) if t["Key"] != "restored-from"]
    return {
        **source.reference,
        "TargetDBInstanceIdentifier": target,
        **point_in_time(source, when),
        **source.settings,
        "Tags": [*tags, {"Key": "restored-from", "Value": source.identifier}],
    }


def wait_available(rds: Any, identifier: str, waiting: Waiting) -> dict[str, Any]:
    """Poll until `identifier` exists and is available; a rename makes the new name appear only later."""
    deadline = time.monotonic() + waiting.timeout_s
    while True:
        found = instance(rds, identifier)
        status = found["DBInstanceStatus"] if found else "not there yet"
        if status == "available":
            return found
        if status in {"failed", "incompatible-restore", "incompatible-parameters", "incompatible-network"}:
            raise RestoreError(f"{identifier} is {status}: see its events in the RDS console")
        if time.monotonic() > deadline:
            raise RestoreError(f"{identifier} still {status} after {waiting.timeout_s:.0f} s")
        time.sleep(waiting.poll_s)


def verify(restored: dict[str, Any], source: Source) -> list[str]:
    """What makes the restored instance fit to serve; each failed check is a line of the error."""
    problems = []
    if not restored.get("Endpoint", {}).get("Address"):
        problems.append("it has no endpoint")
    if not restored.get("StorageEncrypted"):
        problems.append("its storage is not encrypted")
    expected_groups = set(source.settings.get("VpcSecurityGroupIds", []))
    groups = {g["VpcSecurityGroupId"] for g in restored.get("VpcSecurityGroups", [])}
    if not expected_groups <= groups:
        problems.append(f"it is not in the security groups {sorted(expected_groups - groups)}")
    if restored.get("PubliclyAccessible"):
        problems.append("it is publicly accessible")
    if {"Key": "restored-from", "Value": source.identifier} not in restored.get("TagList", []):
        problems.append(f"it was not restored from {source.identifier} (its tag restored-from)")
    return problems


async def data_problems(url: str, restored_to: datetime | None) -> list[str]:
    """What the restored data says: Chat Wizard's schema is there, and nothing written after the time."""
    conn = await asyncpg.connect(url, timeout=30)
    try:
        migration = await conn.fetchval("SELECT max(name) FROM schema_migrations")
        newest = await conn.fetchval("SELECT max(created_at) FROM messages")
    finally:
        await conn.close()
    if migration is None:
        return ["its database has no migrations applied: not Chat Wizard's data"]
    if restored_to and newest and newest > restored_to:
        return [f"it holds a message written at {newest.isoformat()}, after {restored_to.isoformat()}"]
    return []


def check_data(endpoint: str, restored_to: datetime | None) -> list[str]:
    template = os.environ.get(CHECK_URL)
    if not template:
        return [f"--check-data reads its login from {CHECK_URL}: a postgresql:// URL, {{host}} as its host"]
    try:
        return asyncio.run(data_problems(template.replace("{host}", endpoint), restored_to))
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        return [f"its data could not be read: {type(error).__name__}: {error}"]


def rename(rds: Any, old: str, new: str, waiting: Waiting, say: Callable[[str], None]) -> dict[str, Any]:
    say(f"rename {old} -> {new}")
    rds.modify_db_instance(DBInstanceIdentifier=old, NewDBInstanceIdentifier=new, ApplyImmediately=True)
    return wait_available(rds, new, waiting)


def switch(rds: Any, source: Source, restored: str, stamp: str, waiting: Waiting,
           say: Callable[[str], None]) -> dict[str, str]:
    """Give the restored instance the source's identifier (its endpoint), and new read replicas the old
    replicas' identifiers; the old instances stay, renamed. The old replicas go first: until the new ones
    are up, the app reads from the primary (a replica that does not answer costs it nothing).
    Returns, by the resource id of each replaced instance, the id of the one now under its name."""
    replicas = {name: instance(rds, name) or {} for name in source.replicas}
    for replica in replicas:
        rename(rds, replica, f"{replica}-before-{stamp}", waiting, say)
    rename(rds, source.identifier, f"{source.identifier}-before-{stamp}", waiting, say)
    replaced = {source.resource_id: rename(rds, restored, source.identifier, waiting, say)["DbiResourceId"]}
    for replica, old in replicas.items():
        say(f"create read replica {replica} of {source.identifier}")
        # In the source's region a replica takes the source's subnet group; RDS refuses one named.
        settings = {k: v for k, v in settings_of(old).items() if k != "DBSubnetGroupName"}
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=source.identifier,
            **accepted(rds, READ_REPLICA, settings),
        )
    for replica, old in replicas.items():
        replaced[old["DbiResourceId"]] = wait_available(rds, replica, waiting)["DbiResourceId"]
    return replaced


def adopt(state: Path, replaced: dict[str, str]) -> int:
    """Point the RDS instances of an exported Pulumi state (`pulumi stack export`) at the instances that
    now carry their names: Pulumi follows an instance by its resource id, not its name. Returns how many."""
    exported = json.loads(state.read_text())
    changed = 0
    for resource in exported["deployment"]["resources"]:
        if resource["type"] == RDS_INSTANCE and resource.get("id") in replaced:
            resource["id"] = replaced[resource["id"]]
            changed += 1
    state.write_text(json.dumps(exported, indent=4))
    return changed


def state_holds(state: Path, resource_id: str) -> None:
    """Refuse, before changing anything, a state file that does not know the source instance."""
    try:
        resources = json.loads(state.read_text())["deployment"]["resources"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RestoreError(f"{state} is no exported Pulumi state ({error}): pulumi stack export --file "
                           f"{state}") from None
    if not any(r["type"] == RDS_INSTANCE and r.get("id") == resource_id for r in resources):
        raise RestoreError(f"{state} holds no RDS instance {resource_id}: export the stack that manages the "
                           "source (pulumi stack export --stack <stack> --file ...)")


def target_name(options: argparse.Namespace, source: Source, stamp: str) -> str:
    """The restored instance's name, with every name the run gives checked before anything changes."""
    target = options.switch_to or options.target or f"{source.identifier}-pitr-{stamp}"
    given = [target]
    if options.switch or options.switch_to:
        given += [f"{name}-before-{stamp}" for name in (source.identifier, *source.replicas)]
    bad = [name for name in given if not IDENTIFIER.match(name)]
    if bad:
        raise RestoreError(f"not a valid RDS instance name (letters, digits, single hyphens, ≤ 63): {bad}")
    return target


def find_source(rds: Any, options: argparse.Namespace) -> Source:
    if not options.from_replicated_backups:
        return source_instance(rds, options.source)
    network = {"DBSubnetGroupName": options.subnet_group, "VpcSecurityGroupIds": options.security_group,
               "DBParameterGroupName": options.parameter_group}
    return replicated_backups(rds, options.source, accepted(rds, RESTORE, network))


def restore(rds: Any, source: Source, target: str, options: argparse.Namespace,
            say: Callable[[str], None]) -> None:
    """Start the restore (or, with --dry-run, print it): the checks on its input come first."""
    request = restore_request(source, target, options.time)
    if instance(rds, target):
        raise RestoreError(f"{target} exists already: name another with --target")
    when = options.time.isoformat() if options.time else "the latest restorable time"
    say(f"restore {source.identifier} as of {when} into {target} in {rds.meta.region_name}")
    if options.dry_run:
        say(f"  {RESTORE}: {json.dumps(request, default=str)}")
    else:
        rds.restore_db_instance_to_point_in_time(**request)


def switch_and_adopt(rds: Any, source: Source, target: str, stamp: str, options: argparse.Namespace,
                     say: Callable[[str], None]) -> None:
    if options.dry_run:
        say(f"then switch: {target} becomes {source.identifier}; renamed -before-{stamp}: "
            f"{', '.join((source.identifier, *source.replicas))}; new read replicas: "
            f"{', '.join(source.replicas) or 'none'}")
        return
    replaced = switch(rds, source, target, stamp, waiting(options), say)
    say(f"switched: {source.identifier} is the restored database. Restart PgBouncer (kubectl -n "
        "chatwizard rollout restart deploy/pgbouncer) so no connection stays on the old one.")
    if options.pulumi_state:
        changed = adopt(options.pulumi_state, replaced)
        say(f"{options.pulumi_state}: {changed} RDS instances now the restored ones; "
            f"pulumi stack import --file {options.pulumi_state}, then pulumi refresh and pulumi up")


def waiting(options: argparse.Namespace) -> Waiting:
    return Waiting(options.poll_seconds, options.timeout_minutes * 60)


def run(options: argparse.Namespace, say: Callable[[str], None]) -> None:
    rds = boto3.client("rds", region_name=options.region)
    source = find_source(rds, options)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
    target = target_name(options, source, stamp)
    if options.pulumi_state:
        state_holds(options.pulumi_state, source.resource_id)
    if options.switch_to and instance(rds, target) is None:
        raise RestoreError(f"no DB instance {target!r} to switch to in {options.region}")
    if not options.switch_to:
        restore(rds, source, target, options, say)
    if not options.dry_run:
        restored = wait_available(rds, target, waiting(options))
        problems = verify(restored, source)
        if options.check_data:
            problems += check_data(restored["Endpoint"]["Address"], options.time)
        if problems:
            raise RestoreError(f"{target} failed its checks: {'; '.join(problems)}")
        say(f"{target} is available at {restored['Endpoint']['Address']}")
    if options.switch or options.switch_to:
        switch_and_adopt(rds, source, target, stamp, options, say)


def iso_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time: 2026-12-02T10:15:00Z") from None


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.restore", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--region", required=True, help="where to restore: the stack's or its backup region")
    parser.add_argument("--source", required=True, help="the primary (database_primary_identifier)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--time", type=iso_time, help="restore to this time (ISO 8601 with a zone)")
    when.add_argument("--latest", action="store_true", help="restore to the latest restorable time")
    parser.add_argument("--target", help="the restored instance's name (default: <source>-pitr-<time>)")
    parser.add_argument("--switch", action="store_true", help="switch the app to it once it checks out")
    parser.add_argument("--switch-to", metavar="RESTORED", help="switch to an instance restored before")
    parser.add_argument("--dry-run", action="store_true", help="check and print the plan, change nothing")
    parser.add_argument("--check-data", action="store_true",
                        help=f"also read the restored data (its login: {CHECK_URL}, {{host}} as the host)")
    parser.add_argument("--pulumi-state", type=Path, metavar="FILE",
                        help="with a switch: the stack's exported state, rewritten to the restored instances")
    parser.add_argument("--from-replicated-backups", action="store_true",
                        help="restore from the copies in --region, the stack's backup region")
    parser.add_argument("--subnet-group", help="with --from-replicated-backups: the DB subnet group there")
    parser.add_argument("--security-group", action="append", default=[], help="... and its security groups")
    parser.add_argument("--parameter-group", help="... and its DB parameter group")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="how often to look (default 30)")
    parser.add_argument("--timeout-minutes", type=float, default=240.0, help="how long to wait (default 240)")
    return parser


def checked(options: argparse.Namespace) -> argparse.Namespace:
    if options.switch_to and (options.time or options.latest):
        raise RestoreError("--switch-to switches to an instance restored before: it takes no --time/--latest")
    if not options.switch_to and not (options.time or options.latest):
        raise RestoreError("say which point in time: --time 2026-12-02T10:15:00Z, or --latest")
    if options.pulumi_state and not (options.switch or options.switch_to):
        raise RestoreError("--pulumi-state goes with --switch or --switch-to: it follows the switch")
    if options.from_replicated_backups and (options.switch or options.switch_to):
        raise RestoreError("--switch works in the stack's own region; after a region loss the estate moves "
                           "to the backup region with its database (docs/deploy.md, \"Restore (AWS)\")")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        run(checked(options), print)
    except RestoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ClientError as error:
        problem = error.response["Error"]
        print(f"error: AWS refused {error.operation_name}: {problem['Code']}: {problem['Message']}",
              file=sys.stderr)
        return 1
    except BotoCoreError as error:  # no credentials, no network
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
