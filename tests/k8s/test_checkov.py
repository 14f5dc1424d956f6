"""checkov finds nothing wrong in the manifests (every overlay, as kustomize builds it) or the Dockerfile;
the few checks skipped carry their reason beside them, in the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CHECKOV = ROOT / ".venv" / "tools" / "bin" / "checkov"  # its own venv: its pins clash with the app's


def checkov(*target: str) -> list[dict]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # kustomize
    result = subprocess.run([CHECKOV, *target, "--skip-download", "-o", "json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


@pytest.mark.parametrize("target", [("-d", "k8s", "--framework", "kustomize"),
                                    ("-f", "app/Dockerfile", "--framework", "dockerfile")], ids=["k8s", "dockerfile"])
def test_checkov_passes(target: tuple[str, ...]):
    for report in checkov(*target):
        results = report["results"]
        assert results["failed_checks"] == [], [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
        assert report["summary"]["passed"] > 0 and report["summary"]["parsing_errors"] == 0
        for skipped in results["skipped_checks"]:
            assert len(skipped["check_result"]["suppress_comment"]) > 20, f"skip without a reason: {skipped['check_id']}"
