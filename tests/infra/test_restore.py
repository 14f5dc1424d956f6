"""`python -m infra.restore` against an AWS API stand-in: moto in server mode, a separate process whose
recording of the requests it received is what the tests check (the call, its region and its
parameters). moto keeps no replicated automated backups, so the restore from them in the backup region
is checked against botocore's Stubber, which holds requests and answers to the RDS API model."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.stub import Stubber

from infra import restore

REGION, BACKUP_REGION = "us-east-1", "us-west-2"
MUTATING = {"RestoreDBInstanceToPointInTime", "ModifyDBInstance", "CreateDBInstanceReadReplica"}


@dataclass
class Moto:
    url: str
    recording: Path

    def post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, method="POST"), timeout=10).read()

    def requests(self) -> list[tuple[str, dict[str, str]]]:
        """(region, parameters) of every API call the server received, in order."""
        received = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            body = base64.b64decode(entry["body"]).decode() if entry["body_encoded"] else entry["body"] or ""
            region = re.search(r"Credential=[^/]+/\d+/([^/]+)/", entry["headers"].get("Authorization", ""))
            params = {k: v[0] for k, v in parse_qs(body).items()}
            received.append((region.group(1) if region else "", params))
        return received

    def calls(self, action: str) -> list[tuple[str, dict[str, str]]]:
        return [(region, params) for region, params in self.requests() if params.get("Action") == action]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    recording = tmp_path_factory.mktemp("moto") / "requests.jsonl"
    port = free_port()
    env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    moto = Moto(f"http://127.0.0.1:{port}", recording)
    deadline = time.monotonic() + 30
    while True:
        try:
            moto.post("/moto-api/reset")
            break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "moto_server did not start"
            time.sleep(0.2)
    yield moto
    server.terminate()
    server.wait(timeout=10)


@dataclass
class Estate:
    """What the stack builds, as far as a restore sees it: a primary with a read replica in a VPC."""

    primary: str
    replica: str
    security_group: str
    created: datetime


@pytest.fixture
def estate(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Estate:
    moto_server.post("/moto-api/reset")
    for name, value in {"AWS_ENDPOINT_URL": moto_server.url, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ec2, rds = boto3.client("ec2", region_name=REGION), boto3.client("rds", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]
    group = ec2.create_security_group(GroupName="database", Description="database", VpcId=vpc)["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName="cw-db", DBSubnetGroupDescription="db", SubnetIds=subnets)
    rds.create_db_parameter_group(DBParameterGroupName="cw-pg17", DBParameterGroupFamily="postgres17",
                                  Description="rds.force_ssl")
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    rds.create_db_instance(
        DBInstanceIdentifier="cw-primary", Engine="postgres", DBInstanceClass="db.m7g.large",
        MasterUsername="chatwizard", MasterUserPassword="a-long-test-password", AllocatedStorage=100,
        BackupRetentionPeriod=14, StorageEncrypted=True, KmsKeyId=key, DBSubnetGroupName="cw-db",
        VpcSecurityGroupIds=[group], DBParameterGroupName="cw-pg17", DeletionProtection=True,
        Tags=[{"Key": "environment", "Value": "production"}],
    )
    rds.create_db_instance_read_replica(DBInstanceIdentifier="cw-replica-1", SourceDBInstanceIdentifier="cw-primary",
                                        DBInstanceClass="db.t4g.medium")
    created = rds.describe_db_instances(DBInstanceIdentifier="cw-primary")["DBInstances"][0]["InstanceCreateTime"]
    moto_server.post("/moto-api/recorder/reset-recording")
    moto_server.post("/moto-api/recorder/start-recording")
    return Estate("cw-primary", "cw-replica-1", group, created)


def run(*args: str) -> int:
    return restore.main(["--region", REGION, "--source", "cw-primary", "--poll-seconds", "0.05",
                         "--timeout-minutes", "0.5", *args])


def instances() -> dict[str, dict[str, Any]]:
    found = boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"]
    return {i["DBInstanceIdentifier"]: i for i in found}


def exported_state(path: Path, resource_ids: dict[str, str]) -> Path:
    """What `pulumi stack export` writes, reduced to what the switch reads: resources by type and id."""
    resources = [{"urn": f"urn:pulumi:production::chatwizard::aws:rds/instance:Instance::{name}",
                  "type": "aws:rds/instance:Instance", "id": resource_id} for name, resource_id in resource_ids.items()]
    resources.append({"urn": "urn:pulumi:production::chatwizard::aws:kms/key:Key::storage", "type": "aws:kms/key:Key",
                      "id": "1234abcd"})
    path.write_text(json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": resources}}))
    return path


def test_restore_to_a_point_in_time_then_switch(moto_server: Moto, estate: Estate, capsys, tmp_path: Path):
    before = {name: i["DbiResourceId"] for name, i in instances().items()}
    state = exported_state(tmp_path / "state.json", before)
    when = estate.created + timedelta(microseconds=1)
    assert run("--time", when.isoformat(), "--switch", "--pulumi-state", str(state)) == 0
    [(region, request)] = moto_server.calls("RestoreDBInstanceToPointInTime")
    restored = request["TargetDBInstanceIdentifier"]
    assert region == REGION and request["SourceDBInstanceIdentifier"] == "cw-primary"
    assert datetime.fromisoformat(request["RestoreTime"]) == when
    assert re.fullmatch(r"cw-primary-pitr-\d{12}", restored)
    # The restored instance lands where the primary is, as it is configured, not on RDS's defaults.
    assert request["DBSubnetGroupName"] == "cw-db" and request["DBParameterGroupName"] == "cw-pg17"
    assert request["VpcSecurityGroupIds.VpcSecurityGroupId.1"] == estate.security_group
    assert request["DeletionProtection"] == "true" and request["BackupRetentionPeriod"] == "14"
    # The switch: the old replica, then the old primary step aside, the restored instance takes the name.
    stamp = restored.rpartition("-")[2]
    renames = [(p["DBInstanceIdentifier"], p["NewDBInstanceIdentifier"]) for _, p in moto_server.calls("ModifyDBInstance")]
    assert renames == [("cw-replica-1", f"cw-replica-1-before-{stamp}"), ("cw-primary", f"cw-primary-before-{stamp}"),
                       (restored, "cw-primary")]
    [(_, replica)] = moto_server.calls("CreateDBInstanceReadReplica")
    assert replica["DBInstanceIdentifier"] == "cw-replica-1" and replica["SourceDBInstanceIdentifier"] == "cw-primary"
    assert replica["DBInstanceClass"] == "db.t4g.medium"  # the old replica's class, not the primary's
    assert "DBSubnetGroupName" not in replica  # RDS refuses one for a replica in the source's region
    now = instances()
    assert {"cw-primary", "cw-replica-1", f"cw-primary-before-{stamp}", f"cw-replica-1-before-{stamp}"} == set(now)
    assert {"Key": "restored-from", "Value": "cw-primary"} in now["cw-primary"]["TagList"]
    assert "switched: cw-primary is the restored database" in capsys.readouterr().out
    # Pulumi's state follows the instances under the stack's names (moto gives every instance one resource
    # id, so which id replaces which is test_adopt_points_the_state_at_the_new_instances's to check).
    ids = [r["id"] for r in json.loads(state.read_text())["deployment"]["resources"]]
    assert ids == [now["cw-primary"]["DbiResourceId"], now["cw-replica-1"]["DbiResourceId"], "1234abcd"]


def test_adopt_points_the_state_at_the_new_instances(tmp_path: Path):
    state = exported_state(tmp_path / "state.json", {"primary": "db-OLDPRIMARY", "replica-1": "db-OLDREPLICA",
                                                     "elsewhere": "db-UNRELATED"})
    replaced = {"db-OLDPRIMARY": "db-RESTORED", "db-OLDREPLICA": "db-NEWREPLICA", "1234abcd": "not-an-rds-id"}
    assert restore.adopt(state, replaced) == 2
    ids = [r["id"] for r in json.loads(state.read_text())["deployment"]["resources"]]
    assert ids == ["db-RESTORED", "db-NEWREPLICA", "db-UNRELATED", "1234abcd"]  # the KMS key is no instance


def test_a_state_without_the_source_is_refused_before_any_change(moto_server: Moto, estate: Estate, capsys,
                                                                  tmp_path: Path):
    state = exported_state(tmp_path / "state.json", {"cw-primary": "db-SOMEOTHERSTACK"})
    assert run("--latest", "--switch", "--pulumi-state", str(state)) == 2
    assert "holds no RDS instance db-" in capsys.readouterr().err
    assert not [p for _, p in moto_server.requests() if p.get("Action") in MUTATING]


def test_restore_without_switch_leaves_the_primary_alone(moto_server: Moto, estate: Estate):
    assert run("--latest", "--target", "cw-drill") == 0
    [(_, request)] = moto_server.calls("RestoreDBInstanceToPointInTime")
    assert request["UseLatestRestorableTime"] == "true" and "RestoreTime" not in request
    assert moto_server.calls("ModifyDBInstance") == []
    assert set(instances()) == {"cw-primary", "cw-replica-1", "cw-drill"}


def test_dry_run_checks_and_changes_nothing(moto_server: Moto, estate: Estate, capsys):
    assert run("--latest", "--switch", "--dry-run") == 0
    assert not [p for _, p in moto_server.requests() if p.get("Action") in MUTATING]
    out = capsys.readouterr().out
    assert "RestoreDBInstanceToPointInTime" in out and "then switch:" in out and "cw-replica-1" in out


def test_switch_to_an_instance_restored_before(moto_server: Moto, estate: Estate):
    assert run("--latest", "--target", "cw-checked") == 0
    assert run("--switch-to", "cw-checked") == 0
    assert len(moto_server.calls("RestoreDBInstanceToPointInTime")) == 1
    assert {"Key": "restored-from", "Value": "cw-primary"} in instances()["cw-primary"]["TagList"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time", "2020-01-01T00:00:00Z"], "is outside cw-primary's restorable window"),
        (["--time", "2099-01-01T00:00:00+00:00"], "is outside cw-primary's restorable window"),
        (["--time", "2026-12-02T10:15:00"], "has no time zone"),
        ([], "say which point in time"),
        (["--latest", "--target", "1-not--valid"], "not a valid RDS instance name"),
        (["--latest", "--target", "cw-replica-1"], "cw-replica-1 exists already"),
        (["--latest", "--from-replicated-backups", "--switch"], "--switch works in the stack's own region"),
        (["--switch-to", "cw-restored", "--latest"], "--switch-to switches to an instance restored before"),
        (["--latest", "--pulumi-state", "state.json"], "--pulumi-state goes with --switch"),
        (["--switch-to", "cw-nope"], "no DB instance 'cw-nope' to switch to in us-east-1"),
        (["--switch-to", "cw-replica-1"], "cw-replica-1 failed its checks: it was not restored from cw-primary"),
        (["--latest", "--switch", "--pulumi-state", "no-such-state.json"], "is no exported Pulumi state"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(moto_server: Moto, estate: Estate, capsys, args, message):
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not [p for _, p in moto_server.requests() if p.get("Action") in MUTATING]


def test_check_data_reads_the_restored_database(moto_server: Moto, estate: Estate, databases, monkeypatch,
                                                capsys):
    """The restored endpoint is moto's, so the check reads a real Postgres with Chat Wizard's schema."""
    monkeypatch.setenv(restore.CHECK_URL, databases.primary.dsn.replace("127.0.0.1", "{host}"))
    assert restore.check_data("127.0.0.1", None) == []  # {host} is the endpoint
    monkeypatch.setenv(restore.CHECK_URL, databases.primary.dsn)  # as it is: a tunnel
    assert run("--latest", "--target", "cw-checked", "--check-data") == 0
    # A restore to a time holds nothing written after it: a message from later fails the check.
    later = (estate.created + timedelta(hours=1)).isoformat()
    databases.primary.psql(
        "WITH u AS (INSERT INTO users (email) VALUES ('restore-check') RETURNING id), "
        "c AS (INSERT INTO conversations (user_id, title) SELECT id, 'x' FROM u RETURNING id) "
        f"INSERT INTO messages (conversation_id, role, content, created_at) SELECT id, 'user', 'x', '{later}' FROM c"
    )
    try:
        when = (estate.created + timedelta(microseconds=1)).isoformat()
        assert run("--time", when, "--target", "cw-checked-again", "--switch", "--check-data") == 2
    finally:
        databases.primary.psql("DELETE FROM users WHERE email = 'restore-check'")
    assert "failed its checks: it holds a message written at" in capsys.readouterr().err
    assert moto_server.calls("ModifyDBInstance") == []  # no switch to data that fails its check
    monkeypatch.delenv(restore.CHECK_URL)
    assert run("--latest", "--target", "cw-unchecked", "--check-data") == 2
    assert f"--check-data reads its login from {restore.CHECK_URL}" in capsys.readouterr().err


def test_an_unknown_source_is_named(estate: Estate, capsys):
    assert restore.main(["--region", REGION, "--source", "cw-nope", "--latest"]) == 2
    assert "no DB instance 'cw-nope' in us-east-1" in capsys.readouterr().err


def test_a_time_that_is_no_time_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        restore.main(["--region", REGION, "--source", "cw-primary", "--time", "yesterday"])
    assert exit_.value.code == 2 and "is not an ISO 8601 time" in capsys.readouterr().err


def test_no_replicated_backups_in_the_backup_region(moto_server: Moto, estate: Estate, capsys):
    args = ["--region", BACKUP_REGION, "--source", "cw-primary", "--latest", "--from-replicated-backups"]
    assert restore.main(args) == 2
    assert "no replicated automated backups of 'cw-primary' in us-west-2" in capsys.readouterr().err
    assert {region for region, _ in moto_server.requests()} == {BACKUP_REGION}


def test_restore_in_the_backup_region_from_replicated_backups(monkeypatch: pytest.MonkeyPatch, capsys):
    rds = boto3.client("rds", region_name=BACKUP_REGION, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    arn = f"arn:aws:rds:{BACKUP_REGION}:123456789012:auto-backup:ab-abcdefghijklmnopqrstuvwxyz0"
    latest = datetime.now(UTC).replace(microsecond=0)
    when = latest - timedelta(hours=1)
    tags = [{"Key": "environment", "Value": "production"}]
    with Stubber(rds) as stub:
        stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": [
            {"DBInstanceIdentifier": "cw-other", "DBInstanceAutomatedBackupsArn": arn + "x",
             "RestoreWindow": {"EarliestTime": when, "LatestTime": latest}},
            {"DBInstanceIdentifier": "cw-primary", "DBInstanceAutomatedBackupsArn": arn, "Status": "replicating",
             "Region": REGION, "TagList": tags,
             "RestoreWindow": {"EarliestTime": latest - timedelta(days=14), "LatestTime": latest}},
        ]})
        stub.add_client_error("describe_db_instances", "DBInstanceNotFound", http_status_code=404,
                              expected_params={"DBInstanceIdentifier": "cw-dr"})
        stub.add_response("restore_db_instance_to_point_in_time", {"DBInstance": {}}, expected_params={
            "SourceDBInstanceAutomatedBackupsArn": arn, "TargetDBInstanceIdentifier": "cw-dr", "RestoreTime": when,
            "DBSubnetGroupName": "cw-dr-db", "VpcSecurityGroupIds": ["sg-0dr"],
            "Tags": [*tags, {"Key": "restored-from", "Value": "cw-primary"}],
        })
        stub.add_response("describe_db_instances", {"DBInstances": [{
            "DBInstanceIdentifier": "cw-dr", "DBInstanceStatus": "available", "StorageEncrypted": True,
            "Endpoint": {"Address": f"cw-dr.abc.{BACKUP_REGION}.rds.amazonaws.com"},
            "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-0dr"}], "PubliclyAccessible": False,
            "TagList": [*tags, {"Key": "restored-from", "Value": "cw-primary"}],
        }]}, expected_params={"DBInstanceIdentifier": "cw-dr"})
        monkeypatch.setattr(restore.boto3, "client", lambda *a, **k: rds)
        code = restore.main(["--region", BACKUP_REGION, "--source", "cw-primary", "--from-replicated-backups",
                             "--time", when.isoformat(), "--target", "cw-dr", "--subnet-group", "cw-dr-db",
                             "--security-group", "sg-0dr", "--poll-seconds", "0"])
        stub.assert_no_pending_responses()
    assert code == 0
    assert f"cw-dr is available at cw-dr.abc.{BACKUP_REGION}" in capsys.readouterr().out
