"""The deploy runner: one small Debian instance in a private subnet, the only host that reaches the private
EKS API. It runs `pulumi up`, the release pipeline's self-hosted agent and on-call's kubectl; Ansible
converges it (ansible/, the deploy_runner role). No inbound rule at all: operators and Ansible reach it
through SSM Session Manager (SSH tunnelled over SSM), which the agent opens outbound."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

TYPE = "chatwizard:infra:DeployRunner"
DEBIAN_OWNER = "136693071363"  # Debian's AWS account: the official Debian cloud images
DEBIAN_IMAGE = "debian-12-amd64-*"  # bookworm, what the Ansible roles target
# SSM's agent is not in Debian's images; AWS publishes it per region (the documented manual install).
SSM_AGENT = "https://s3.{region}.amazonaws.com/amazon-ssm-{region}/latest/debian_amd64/amazon-ssm-agent.deb"
MANAGED_POLICY = "arn:aws:iam::aws:policy/{}"


@dataclass(frozen=True)
class DeployRunnerArgs:
    subnet_id: pulumi.Input[str]  # a private subnet: no public address, egress through the NAT
    vpc_id: pulumi.Input[str]
    region: str
    instance_type: str
    # What `pulumi up` of the whole estate needs (it creates IAM roles, VPCs, clusters ...).
    deploy_policy_arns: list[str]
    admin_ssh_keys: list[str]  # the first Ansible run's admin user (SSH over SSM); the base role takes over
    tags: dict[str, str]


def _cloud_config(region: str, keys: list[str]) -> str:
    """cloud-init user data: the SSM agent, and the admin user's keys (Debian's images call it `admin`)."""
    config = {
        "ssh_authorized_keys": keys,
        "runcmd": [
            ["curl", "-fsSLo", "/var/cache/amazon-ssm-agent.deb", SSM_AGENT.format(region=region)],
            ["dpkg", "-i", "/var/cache/amazon-ssm-agent.deb"],
            ["systemctl", "enable", "--now", "amazon-ssm-agent"],
        ],
    }
    return "#cloud-config\n" + json.dumps(config, indent=1)  # JSON is YAML


class DeployRunner(pulumi.ComponentResource):
    def __init__(self, name: str, args: DeployRunnerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-runner",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "ec2.amazonaws.com"}}],
            }),
            tags=args.tags,
            opts=child,
        )
        for index, arn in enumerate([MANAGED_POLICY.format("AmazonSSMManagedInstanceCore"),
                                     *args.deploy_policy_arns]):
            aws.iam.RolePolicyAttachment(f"{name}-runner-{index}", role=self.role.name, policy_arn=arn,
                                         opts=pulumi.ResourceOptions(parent=self.role))
        profile = aws.iam.InstanceProfile(f"{name}-runner", role=self.role.name, tags=args.tags, opts=child)
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-runner",
            vpc_id=args.vpc_id,
            description="Deploy runner: no inbound; HTTPS out (EKS API, AWS, SSM, GitHub), HTTP for apt",
            ingress=[],
            egress=[{"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": ["0.0.0.0/0"],
                     "description": what} for port, what in ((443, "HTTPS"), (80, "Debian's mirror"))],
            tags={**args.tags, "Name": f"{name}-runner"},
            opts=child,
        )
        image = aws.ec2.get_ami_output(most_recent=True, owners=[DEBIAN_OWNER],
                                       filters=[{"name": "name", "values": [DEBIAN_IMAGE]}])
        self.instance = aws.ec2.Instance(
            f"{name}-runner",
            ami=image.id,
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            associate_public_ip_address=False,
            vpc_security_group_ids=[self.security_group.id],
            iam_instance_profile=profile.name,
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled"},  # IMDSv2 only
            root_block_device={"encrypted": True, "volume_type": "gp3", "volume_size": 30},
            user_data=_cloud_config(args.region, args.admin_ssh_keys),
            tags={**args.tags, "Name": f"{name}-runner", "role": "deploy-runner"},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"]),  # a newer image: no replacement
        )
        self.register_outputs({"private_ip": self.instance.private_ip, "role_arn": self.role.arn})
