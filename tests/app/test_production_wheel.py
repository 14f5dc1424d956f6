"""The production wheel (what app/Dockerfile builds and the image installs) carries the service only: not
the local estate, its sqlmap-driving security audit, nor the load-test tools; and its CLI refuses the
estate's commands with a clear message instead of an ImportError."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# The CLI from the unpacked wheel alone: the repository's editable install (a meta-path finder that maps
# `chatwizard` to app/, estate included) is taken out first, and the import is checked to be the wheel's.
RUN_FROM_WHEEL = """
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")
                 and "editable" not in getattr(f, "__name__", "")]
sys.path.insert(0, sys.argv[1])
import chatwizard
assert chatwizard.__file__.startswith(sys.argv[1]), chatwizard.__file__
from chatwizard.cli import main
sys.argv = ["chatwizard", *sys.argv[2:]]
main()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built as the Dockerfile builds it: from the same files, without the development switch."""
    source = tmp_path_factory.mktemp("context")
    for name in ("pyproject.toml", "setup.py", "constraints.txt"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(out)], check=True, capture_output=True, env={"PATH": str(Path(sys.executable).parent)})
    (built,) = out.glob("chatwizard-*.whl")
    return built


def test_the_wheel_ships_the_service_without_development_tooling(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "chatwizard/cli.py" in names and "chatwizard/main.py" in names
    assert any(n.startswith("chatwizard/migrations/") for n in names)  # package data still ships
    assert {"chatwizard/web/static/index.html", "chatwizard/web/static/app.js"} <= set(names)  # the web app
    unwanted = [n for n in names if n.startswith(("chatwizard/estate/", "fakellm/", "loadrun/"))
                or "security_audit" in n]
    assert unwanted == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert zipfile.ZipFile(wheel).read(entry_points).decode().split() == ["[console_scripts]", "chatwizard", "=",
                                                                          "chatwizard.cli:main"]


@pytest.mark.parametrize("command", [["up"], ["security-audit", "--key", "x"]])
def test_the_production_cli_refuses_estate_commands_clearly(wheel: Path, tmp_path: Path, command: list[str]):
    """The wheel's own code, on a path where chatwizard.estate does not exist (the image's situation)."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    result = subprocess.run([sys.executable, "-c", RUN_FROM_WHEEL, str(tmp_path), *command],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "is a development command" in result.stderr and "Traceback" not in result.stderr
