"""The release pipeline's workflows pass actionlint and zizmor (offline), and call only make targets
that exist, so a pipeline change is checked before it first runs on GitHub."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_actionlint_finds_nothing():
    result = subprocess.run([BIN / "actionlint", *WORKFLOWS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing():
    result = subprocess.run([BIN / "zizmor", "--offline", "--no-progress", ROOT / ".github" / "workflows"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_make_target_the_pipeline_runs_exists():
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for workflow in WORKFLOWS:
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            for step in job["steps"]:
                for target in re.findall(r"\bmake ([a-z][\w-]*)", step.get("run", "")):
                    assert target in targets, f"{workflow.name}: make {target} is not in the Makefile"


def test_production_waits_for_staging_and_an_approval():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())["jobs"]
    assert "staging" in jobs["production"]["needs"] and jobs["production"]["environment"] == "production"
    assert jobs["staging"]["needs"] == "image" and jobs["image"]["needs"] == "test"
