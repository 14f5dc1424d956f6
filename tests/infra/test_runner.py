"""The deploy runner (infra/components/runner.py): a cluster admin inside the VPC, reachable only through
SSM, that the private EKS API admits, and the stack output Ansible's inventory is built from."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import ip_address, ip_network
from pathlib import Path

from .conftest import ROOT, Stack

INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def by_id(stack: Stack, kind: str) -> dict[str, dict]:
    return {f"{r['name']}-id": r["inputs"] for r in stack.of_type(kind)}  # the mock's ids


def runner(stack: Stack) -> dict:
    return stack.inputs(INSTANCE)


def test_the_runner_role_is_a_cluster_admin(stack: Stack):
    role = stack.one("aws:iam/role:Role", f"chatwizard-{stack.name}-runner")
    arn = f"arn:aws:mock:us-east-1:123456789012:{role['name']}"  # what the mock gives the role
    admins = {r["inputs"]["principalArn"] for r in stack.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
              if r["inputs"]["policyArn"] == ADMIN_POLICY}
    assert arn in admins
    profile = stack.one("aws:iam/instanceProfile:InstanceProfile")
    assert runner(stack)["iamInstanceProfile"] == profile["name"] and profile["inputs"]["role"] == role["name"]
    attached = {r["inputs"]["policyArn"] for r in stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r["inputs"]["role"] == role["name"]}
    assert "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" in attached  # Session Manager


def test_the_runner_sits_in_a_private_subnet_of_the_vpc(stack: Stack):
    instance = runner(stack)
    subnet = by_id(stack, SUBNET)[instance["subnetId"]]
    vpc = stack.inputs("aws:ec2/vpc:Vpc")
    assert "kubernetes.io/role/internal-elb" in subnet["tags"]  # the private subnets' tag
    assert subnet["vpcId"] == f"{stack.one('aws:ec2/vpc:Vpc')['name']}-id"
    assert ip_network(subnet["cidrBlock"]).subnet_of(ip_network(vpc["cidrBlock"]))
    assert instance["associatePublicIpAddress"] is False
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["rootBlockDevice"]["encrypted"] is True


def test_nothing_reaches_the_runner_and_it_reaches_the_eks_api(stack: Stack):
    groups = by_id(stack, GROUP)
    own = [groups[g] for g in runner(stack)["vpcSecurityGroupIds"]]
    assert [g.get("ingress") or [] for g in own] == [[]]  # no SSH or anything else: SSM only
    assert any(e["protocol"] == "tcp" and e["fromPort"] <= 443 <= e["toPort"] for e in own[0]["egress"])
    address = ip_address(stack.outputs["ansibleInventory"]["deploy_runner"][0])
    cluster = stack.inputs("aws:eks/cluster:Cluster")
    api = [groups[g] for g in cluster["vpcConfig"]["securityGroupIds"]]
    assert any(rule["fromPort"] <= 443 <= rule["toPort"] and any(address in ip_network(c) for c in rule["cidrBlocks"])
               for group in api for rule in group["ingress"])


def test_the_stack_output_becomes_the_ansible_inventory(stack: Stack, tmp_path: Path):
    subnet = by_id(stack, SUBNET)[runner(stack)["subnetId"]]
    assert ip_address(stack.outputs["ansibleInventory"]["deploy_runner"][0]) in ip_network(subnet["cidrBlock"])
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack.outputs))
    result = subprocess.run([sys.executable, str(ROOT / "ansible" / "inventories" / stack.name / "hosts.py"), "--list"],
                            env={"PULUMI_OUTPUTS_FILE": str(outputs)}, capture_output=True, text=True, check=True)
    inventory = json.loads(result.stdout)
    assert inventory["deploy_runner"]["hosts"] == ["deploy-runner-1"]
    host = inventory["_meta"]["hostvars"]["deploy-runner-1"]
    assert host["ansible_host"] == stack.outputs["ansibleInventory"]["deploy_runner"][0]
    assert inventory["all"]["vars"]["pulumi_outputs"]["deployRunnerInstanceId"] == stack.outputs["deployRunnerInstanceId"]
