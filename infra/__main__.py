"""Pulumi entry point (`main: infra/` in Pulumi.yaml): validate the stack config, then build the estate."""

import sys
from pathlib import Path

# Pulumi runs this file as a script; make `infra` importable as the package the tests import too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import config, program

program.build(config.load())
