"""EKS: a private API endpoint, Kubernetes secrets envelope-encrypted with a KMS key, managed nodes in the
private subnets, and the add-ons the app needs (metrics-server for the HPA, cluster-autoscaler, the
ingress controller, cert-manager). The kube-prometheus-stack comes from the Monitoring component."""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Network

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

TYPE = "chatwizard:infra:Cluster"
LB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer"

# Helm charts, pinned: upgrades are deliberate changes reviewed in a pull request.
ADDONS = {
    "metrics-server": ("https://kubernetes-sigs.github.io/metrics-server/", "metrics-server", "3.12.2"),
    "cluster-autoscaler": ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.46.6"),
    "ingress-nginx": ("https://kubernetes.github.io/ingress-nginx", "ingress-nginx", "4.12.3"),
    "cert-manager": ("https://charts.jetstack.io", "cert-manager", "v1.17.2"),
}


@dataclass(frozen=True)
class ClusterArgs:
    version: str
    subnet_ids: list[pulumi.Output[str]]
    node_security_group_id: pulumi.Output[str]
    edge_security_group_id: pulumi.Output[str]
    public_access_cidrs: list[IPv4Network]
    instance_types: list[str]
    min_size: int
    desired_size: int
    max_size: int
    tags: dict[str, str]


def _assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}],
        }
    )


class Cluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description="EKS secrets envelope encryption",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        cluster_role = self._role(
            f"{name}-cluster", "eks.amazonaws.com", ["AmazonEKSClusterPolicy"], args.tags
        )
        self.cluster = aws.eks.Cluster(
            name,
            version=args.version,
            role_arn=cluster_role.arn,
            tags=args.tags,
            vpc_config={
                "subnet_ids": args.subnet_ids,
                "security_group_ids": [args.node_security_group_id],
                "endpoint_private_access": True,
                "endpoint_public_access": bool(args.public_access_cidrs),
                "public_access_cidrs": [str(c) for c in args.public_access_cidrs] or None,
            },
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": self.secrets_key.arn}},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            access_config={"authentication_mode": "API"},
            opts=child,
        )
        node_role = self._role(
            f"{name}-nodes",
            "ec2.amazonaws.com",
            ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"],
            args.tags,
        )
        aws.iam.RolePolicy(
            f"{name}-autoscaler",
            role=node_role.id,
            opts=pulumi.ResourceOptions(parent=node_role),
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Resource": "*",
                            "Action": [
                                "autoscaling:Describe*",
                                "autoscaling:SetDesiredCapacity",
                                "autoscaling:TerminateInstanceInAutoScalingGroup",
                                "ec2:DescribeLaunchTemplateVersions",
                                "ec2:DescribeInstanceTypes",
                            ],
                        }
                    ],
                }
            ),
        )
        self.node_group = aws.eks.NodeGroup(
            f"{name}-app",
            cluster_name=self.cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=args.subnet_ids,
            instance_types=args.instance_types,
            capacity_type="ON_DEMAND",
            scaling_config={
                "min_size": args.min_size,
                "desired_size": args.desired_size,
                "max_size": args.max_size,
            },
            update_config={"max_unavailable": 1},
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self.cluster, ignore_changes=["scalingConfig.desiredSize"]),
        )
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self._kubeconfig(name), opts=child)
        self._addons(name, args)
        self.register_outputs({"cluster_name": self.cluster.name, "endpoint": self.cluster.endpoint})

    def _role(self, name: str, service: str, managed: list[str], tags: dict[str, str]) -> aws.iam.Role:
        role = aws.iam.Role(
            name,
            assume_role_policy=_assume_role_policy(service),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=role),
            )
        return role

    def _kubeconfig(self, name: str) -> pulumi.Output[str]:
        """Authenticates with `aws eks get-token`: no long-lived credential in the state file."""
        return pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
        ).apply(
            lambda v: json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": name,
                    "clusters": [
                        {"name": name, "cluster": {"server": v[1], "certificate-authority-data": v[2]}}
                    ],
                    "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                    "users": [
                        {
                            "name": name,
                            "user": {
                                "exec": {
                                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                                    "command": "aws",
                                    "args": ["eks", "get-token", "--cluster-name", v[0]],
                                }
                            },
                        }
                    ],
                }
            )
        )

    def _addons(self, name: str, args: ClusterArgs) -> None:
        values = {
            "metrics-server": {"args": ["--kubelet-preferred-address-types=InternalIP"]},
            "cluster-autoscaler": {
                "autoDiscovery": {"clusterName": self.cluster.name},
                "extraArgs": {"balance-similar-node-groups": True, "scale-down-unneeded-time": "10m"},
            },
            "ingress-nginx": {
                "controller": {
                    "replicaCount": 2,
                    "metrics": {"enabled": True},
                    "service": {
                        "annotations": {
                            f"{LB_ANNOTATION}-type": "nlb",
                            f"{LB_ANNOTATION}-security-groups": args.edge_security_group_id,
                        }
                    },
                    # Real client addresses for the app's per-address limits: trust Cloudflare's header.
                    "config": {"use-forwarded-headers": "true", "forwarded-for-header": "CF-Connecting-IP"},
                }
            },
            "cert-manager": {"crds": {"enabled": True}},
        }
        opts = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[self.node_group])
        for release, (repo, chart, version) in ADDONS.items():
            k8s.helm.v3.Release(
                f"{name}-{release}",
                name=release,
                chart=chart,
                version=version,
                namespace="kube-system",
                repository_opts={"repo": repo},
                values=values[release],
                opts=opts,
            )
