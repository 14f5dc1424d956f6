"""The policy pack: `pulumi preview --policy-pack infra/policy` (see infra/README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script by the policy engine

from pulumi_policy import PolicyPack

from infra.policy.policies import policies

PolicyPack(name="chatwizard-guardrails", policies=policies())
