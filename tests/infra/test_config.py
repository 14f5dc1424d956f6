"""Stack configuration: a bad value stops the program with a message naming the key, and every key
the stack files set is documented."""

from __future__ import annotations

import re

import pytest
import yaml

from infra.config import StackConfig

from .conftest import ROOT, run_stack

DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ["--set", "chatwizard:dbReadReplicas=two"],
            "chatwizard:dbReadReplicas: Input should be a valid integer",
        ),
        (["--unset", "chatwizard:alertEmail"], "chatwizard:alertEmail: Field required"),
        (
            ["--set", 'chatwizard:availabilityZones=["us-east-1a"]'],
            "chatwizard:availabilityZones: List should have",
        ),
        (
            ["--set", "chatwizard:environment=prod"],
            "chatwizard:environment: Input should be 'staging' or 'production'",
        ),
        (["--set", "chatwizard:dbReplicas=2"], "chatwizard:dbReplicas: Extra inputs are not permitted"),
        (["--set", "chatwizard:nodeMinSize=5"], "nodeMinSize <= nodeDesiredSize <= nodeMaxSize"),
        (
            ["--set", "chatwizard:dbBackupReplicationRegion=us-east-1"],
            "dbBackupReplicationRegion must be another region than aws:region (us-east-1)",
        ),
        (
            ["--set", "chatwizard:dbBackupReplicationRetentionDays=3"],
            "dbBackupReplicationRetentionDays must be at least dbBackupRetentionDays",
        ),
        # Dumps kept 60 days (+ 7 as noncurrent versions) would outlive the ring's 40 days of old keys.
        (["--set", "chatwizard:backupRetentionDays=60"], "fieldKeyRetentionDays must be at least 67"),
        (
            ["--set", "chatwizard:dbBackupRetentionDays=30", "--set", "chatwizard:dbBackupReplicationRetentionDays=35",
             "--set", "chatwizard:fieldKeyRetentionDays=34"],
            "fieldKeyRetentionDays must be at least 37",
        ),
        *(
            (["--set", f"chatwizard:appImageDigest={image}"], "chatwizard:appImageDigest: String should match")
            for image in (
                "ghcr.io/chatwizard/chatwizard:0.4.0",  # a tag, not a digest
                f"sha256:{DIGEST}",  # no repository
                f"ghcr.io/chatwizard/chatwizard@sha256:{DIGEST[:63]}",
                f"ghcr.io/chatwizard/chatwizard@sha256:{DIGEST.upper()}",
                f"ghcr.io/chatwizard/chatwizard@sha512:{DIGEST}",
            )
        ),
        (
            ["--set", f"chatwizard:appImageDigest=docker.io/someone/chatwizard@sha256:{DIGEST}"],
            "appImageDigest must name an image in appImageRepository",
        ),
    ],
)
def test_bad_config_names_the_key(change: list[str], message: str):
    result = run_stack("staging", *change)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def documented_keys() -> set[str]:
    return set(
        re.findall(r"^\| `(?:chatwizard:)?([a-zA-Z:]+)`", (ROOT / "infra" / "README.md").read_text(), re.M)
    )


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_stack_key_is_known_and_documented(stack: str):
    keys = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    ours = {k.removeprefix("chatwizard:") for k in keys if k.startswith("chatwizard:")}
    model = {field.alias for field in StackConfig.model_fields.values()}
    assert ours <= model
    # Optional keys a stack may leave out; the release pipeline passes appImageDigest on each deploy.
    assert model - ours <= {"sentryDsn", "probeApiKey", "appImageDigest"}
    assert (model | {k for k in keys if not k.startswith("chatwizard:")}) <= documented_keys()
