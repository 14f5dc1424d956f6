"""EKS: a private API endpoint (reached from inside the VPC: the deploy runner), Kubernetes secrets
envelope-encrypted with a KMS key, managed nodes in the private subnets, and what the workload needs
before it can run: the VPC CNI with network-policy enforcement, the EBS CSI driver and a default gp3
StorageClass (the monitoring volumes), the AWS Load Balancer Controller (the only controller that honours
the NLB's security group), ingress-nginx behind it, metrics-server, cluster-autoscaler, and the Argo
Rollouts controller (and its CRDs: the app's Rollout and AnalysisTemplate wait for it), which releases
the app as a canary. The kube-prometheus-stack and prometheus-adapter come from the Monitoring component."""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.facts import load as facts

TYPE = "chatwizard:infra:Cluster"
LB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer"
STORAGE_CLASS = "gp3"
LB_CONTROLLER = "aws-load-balancer-controller"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"  # the EKS add-on's controller service account
ROLLOUTS = "argo-rollouts"

# Helm charts, pinned: upgrades are deliberate changes reviewed in a pull request.
ADDONS = {
    LB_CONTROLLER: ("https://aws.github.io/eks-charts", LB_CONTROLLER, "1.13.3"),
    "metrics-server": ("https://kubernetes-sigs.github.io/metrics-server/", "metrics-server", "3.12.2"),
    "cluster-autoscaler": ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.46.6"),
    "ingress-nginx": ("https://kubernetes.github.io/ingress-nginx", "ingress-nginx", "4.12.3"),
    ROLLOUTS: ("https://argoproj.github.io/argo-helm", ROLLOUTS, "2.41.0"),  # Argo Rollouts v1.9.0
}
# The AWS Load Balancer Controller's permissions, trimmed to what an NLB with a given security group and IP
# targets needs (the controller's published iam_policy.json is the reference when upgrading it).
LB_CONTROLLER_ACTIONS = [
    "ec2:Describe*",
    "ec2:CreateSecurityGroup",
    "ec2:DeleteSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "elasticloadbalancing:*",
    "iam:CreateServiceLinkedRole",
    "acm:ListCertificates",
    "acm:DescribeCertificate",
    "shield:GetSubscriptionState",
]


@dataclass(frozen=True)
class ClusterArgs:
    version: str
    subnet_ids: list[pulumi.Output[str]]
    vpc_id: pulumi.Output[str]
    region: str
    api_security_group_id: pulumi.Output[str]  # on the control plane: who reaches the private API
    edge_security_group_id: pulumi.Output[str]  # on the load balancer: Cloudflare only
    public_access_cidrs: list[IPv4Network]
    # Besides the identity that creates the cluster: the deploy runner's role, operators' roles.
    admin_role_arns: list[pulumi.Input[str]]
    instance_types: list[str]
    min_size: int
    desired_size: int
    max_size: int
    tags: dict[str, str]


def _assume_role_policy(service: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Principal": {"Service": service}}],
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
                # Extra groups for the control plane's interfaces only; nodes get the EKS-made cluster
                # security group (https://docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html).
                "security_group_ids": [args.api_security_group_id],
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
        self._admins(name, args.admin_role_arns)
        # The group EKS makes and puts on the control plane and every managed node: the data stores admit it.
        self.node_security_group_id = self.cluster.vpc_config.cluster_security_group_id
        self._eks_addons(name, args)
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self._kubeconfig(name), opts=child)
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-{STORAGE_CLASS}",
            metadata={
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[self.ebs_csi]),
        )
        self.releases = self._helm_addons(name, args)
        self.ingress_release = self.releases["ingress-nginx"]
        self.rollouts_release = self.releases[ROLLOUTS]
        self.register_outputs({"cluster_name": self.cluster.name, "endpoint": self.cluster.endpoint})

    def _admins(self, name: str, role_arns: list[pulumi.Input[str]]) -> None:
        """Cluster-admin access entries. With authentication mode API only access entries grant access,
        and only the creating identity gets one by itself
        (https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html)."""
        for index, role_arn in enumerate(role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{index}", cluster_name=self.cluster.name, principal_arn=role_arn,
                opts=pulumi.ResourceOptions(parent=self.cluster),
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{index}",
                cluster_name=self.cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=entry),
            )

    def _eks_addons(self, name: str, args: ClusterArgs) -> None:
        """EKS-managed add-ons. The VPC CNI enforces NetworkPolicies only with enableNetworkPolicy
        (https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy.html); without it the
        k8s/ policies are accepted and ignored. The EBS CSI driver provisions the monitoring volumes
        (https://docs.aws.amazon.com/eks/latest/userguide/ebs-csi.html); it and the load balancer
        controller get AWS permissions through EKS Pod Identity, not the nodes' role."""
        after_nodes = pulumi.ResourceOptions(parent=self.cluster, depends_on=[self.node_group])
        self.vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions(parent=self.cluster),
        )
        identity_agent = aws.eks.Addon(
            f"{name}-pod-identity", cluster_name=self.cluster.name, addon_name="eks-pod-identity-agent",
            opts=after_nodes,
        )
        ebs_role = self._pod_role(
            f"{name}-ebs-csi", args, managed=["service-role/AmazonEBSCSIDriverPolicy"]
        )
        self.ebs_csi = aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=self.cluster.name,
            addon_name="aws-ebs-csi-driver",
            pod_identity_associations=[
                {"role_arn": ebs_role.arn, "service_account": EBS_CSI_SERVICE_ACCOUNT}
            ],
            opts=pulumi.ResourceOptions(parent=self.cluster, depends_on=[self.node_group, identity_agent]),
        )
        self.lb_controller_role = self._pod_role(f"{name}-lb-controller", args, actions=LB_CONTROLLER_ACTIONS)
        aws.eks.PodIdentityAssociation(
            f"{name}-lb-controller",
            cluster_name=self.cluster.name,
            namespace=facts().namespaces["system"],
            service_account=LB_CONTROLLER,
            role_arn=self.lb_controller_role.arn,
            opts=pulumi.ResourceOptions(parent=self.lb_controller_role, depends_on=[identity_agent]),
        )

    def _pod_role(
        self, name: str, args: ClusterArgs, managed: list[str] | None = None, actions: list[str] | None = None
    ) -> aws.iam.Role:
        role = aws.iam.Role(
            name,
            assume_role_policy=_assume_role_policy(
                "pods.eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        for policy in managed or []:
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy.rsplit('/', 1)[-1]}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=role),
            )
        if actions:
            aws.iam.RolePolicy(
                name,
                role=role.id,
                policy=json.dumps(
                    {"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
                ),
                opts=pulumi.ResourceOptions(parent=role),
            )
        return role

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

    def _helm_addons(self, name: str, args: ClusterArgs) -> dict[str, k8s.helm.v3.Release]:
        namespaces = facts().namespaces
        edge_ranges = ",".join([*facts().cloudflare_ipv4, *facts().cloudflare_ipv6])
        values: dict[str, dict[str, Any]] = {
            LB_CONTROLLER: {
                "clusterName": self.cluster.name,
                "region": args.region,
                "vpcId": args.vpc_id,
                "serviceAccount": {"name": LB_CONTROLLER},
            },
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
                        # AWS Load Balancer Controller annotations: the in-tree cloud controller ignores
                        # the security-group annotation and opens the node ports to 0.0.0.0/0
                        # (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/nlb/,
                        # "type external" hands the Service to this controller). IP targets with the client
                        # address preserved: nginx sees Cloudflare's address, not a node's.
                        "annotations": {
                            f"{LB_ANNOTATION}-type": "external",
                            f"{LB_ANNOTATION}-scheme": "internet-facing",
                            f"{LB_ANNOTATION}-nlb-target-type": "ip",
                            f"{LB_ANNOTATION}-security-groups": args.edge_security_group_id,
                            f"{LB_ANNOTATION}-manage-backend-security-group-rules": "true",
                            f"{LB_ANNOTATION}-target-group-attributes": "preserve_client_ip.enabled=true",
                        }
                    },
                    # The client's address from Cloudflare's header, believed only from Cloudflare's ranges
                    # (set_real_ip_from; the default 0.0.0.0/0 would let anyone forge it):
                    # https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/configmap/#proxy-real-ip-cidr
                    "config": {
                        "use-forwarded-headers": "true",
                        "forwarded-for-header": "CF-Connecting-IP",
                        "proxy-real-ip-cidr": edge_ranges,
                    },
                }
            },
            # The chart's CRDs (installCRDs), kept if the release is ever removed (keepCRDs) so live
            # Rollouts are not deleted with them; the dashboard stays off (the kubectl plugin suffices).
            ROLLOUTS: {"installCRDs": True, "keepCRDs": True, "dashboard": {"enabled": False}},
        }
        namespace = {"ingress-nginx": namespaces["ingress"], ROLLOUTS: namespaces["rollouts"]}
        after = {"ingress-nginx": LB_CONTROLLER}  # its Service needs the controller's webhook and reconciler
        releases: dict[str, k8s.helm.v3.Release] = {}
        for release, (repo, chart, version) in ADDONS.items():
            needs = [self.node_group, self.vpc_cni] + ([releases[after[release]]] if release in after else [])
            releases[release] = k8s.helm.v3.Release(
                f"{name}-{release}",
                name=release,
                chart=chart,
                version=version,
                namespace=namespace.get(release, namespaces["system"]),
                create_namespace=release in namespace,
                repository_opts={"repo": repo},
                values=values[release],
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=needs),
            )
        return releases
