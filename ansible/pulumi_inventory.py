#!/usr/bin/env python3
"""Ansible inventory from a Pulumi stack's outputs (inventories/<stack>/hosts.py links here).

The stack exports `ansibleInventory`: group name -> list of private addresses (infra/program.py: the
deploy runner). Hosts are named after their group (deploy_runner -> deploy-runner-1, ...). The
stack's other plain outputs are the variable `pulumi_outputs` of every host (e.g. the runner's
instance id, which SSH over SSM targets). The stack is the name of the inventory's folder.
PULUMI_OUTPUTS_FILE reads `pulumi stack output --json` saved earlier instead of calling the CLI
(what a pipeline step without Pulumi credentials does, and the tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OUTPUT = "ansibleInventory"


def stack_outputs(stack: str) -> dict:
    if path := os.environ.get("PULUMI_OUTPUTS_FILE"):
        return json.loads(Path(path).read_text())
    out = subprocess.run(["pulumi", "stack", "output", "--json", "--stack", stack],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def inventory(outputs: dict) -> dict:
    if OUTPUT not in outputs:
        raise SystemExit(f"the stack exports no {OUTPUT!r} output (infra/program.py)")
    plain = {k: v for k, v in outputs.items() if isinstance(v, str | int | float | bool)}
    result: dict = {"_meta": {"hostvars": {}}, "all": {"vars": {"pulumi_outputs": plain}}}
    for group, addresses in sorted(outputs[OUTPUT].items()):
        names = [f"{group.replace('_', '-')}-{i + 1}" for i in range(len(addresses))]
        result[group] = {"hosts": names}
        for name, address in zip(names, addresses, strict=True):
            result["_meta"]["hostvars"][name] = {"ansible_host": address}
    return result


def main(argv: list[str]) -> None:
    if "--host" in argv:
        print("{}")  # every host's variables are in _meta
        return
    stack = Path(argv[0]).parent.name
    print(json.dumps(inventory(stack_outputs(stack)), indent=2))


if __name__ == "__main__":
    main(sys.argv)
