"""A VPC across three availability zones: public subnets for the load balancer and NAT, private subnets
for nodes, pods and data stores, and security groups: Cloudflare alone reaches the load balancer, the
cluster's nodes alone reach Postgres and Redis (`admit`), and the EKS API admits HTTPS from inside the VPC
(the deploy runner) only. The subnet ranges come from infra/facts.yaml, as the NetworkPolicies' do."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.facts import Environment
from infra.ports import POSTGRES_PORT, REDIS_PORT

TYPE = "chatwizard:infra:Network"


@dataclass(frozen=True)
class NetworkArgs:
    environment: Environment  # the VPC range and its subnets
    zones: list[str]
    nat_gateway_per_zone: bool
    edge_ipv4_cidrs: list[str]  # who may reach the load balancer: Cloudflare only
    edge_ipv6_cidrs: list[str]
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=str(args.environment.vpc_cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": name},
            opts=child,
        )
        vpc_child = pulumi.ResourceOptions(parent=self.vpc)
        gateway = aws.ec2.InternetGateway(name, vpc_id=self.vpc.id, tags=tags, opts=vpc_child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            tags=tags,
            opts=vpc_child,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
        )
        public_blocks = args.environment.public_subnets(len(args.zones))
        private_blocks = args.environment.private_subnets(len(args.zones))
        self.public_subnet_ids: list[pulumi.Output[str]] = []
        self.private_subnet_ids: list[pulumi.Output[str]] = []
        nat_ids: list[pulumi.Output[str]] = []
        for index, zone in enumerate(args.zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=str(public_blocks[index]),
                map_public_ip_on_launch=False,
                tags={**tags, "kubernetes.io/role/elb": "1"},
                opts=vpc_child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=public.id, route_table_id=public_routes.id, opts=vpc_child
            )
            self.public_subnet_ids.append(public.id)
            if args.nat_gateway_per_zone or index == 0:
                address = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", tags=tags, opts=vpc_child)
                nat_ids.append(
                    aws.ec2.NatGateway(
                        f"{name}-{zone}",
                        subnet_id=public.id,
                        allocation_id=address.id,
                        tags=tags,
                        opts=vpc_child,
                    ).id
                )
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=str(private_blocks[index]),
                tags={**tags, "kubernetes.io/role/internal-elb": "1"},
                opts=vpc_child,
            )
            routes = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                tags=tags,
                opts=vpc_child,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_ids[-1]}],
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}", subnet_id=private.id, route_table_id=routes.id, opts=vpc_child
            )
            self.private_subnet_ids.append(private.id)

        https = {"protocol": "tcp", "from_port": 443, "to_port": 443}
        self.edge_security_group = self._group(
            f"{name}-edge",
            "HTTPS from Cloudflare's edge only",
            tags | {"role": "edge"},
            [{**https, "cidr_blocks": args.edge_ipv4_cidrs, "ipv6_cidr_blocks": args.edge_ipv6_cidrs}],
        )
        # Attached to the EKS control plane's network interfaces (vpc_config.security_group_ids): the
        # private API endpoint answers only what these rules admit, besides the EKS-made cluster group.
        self.api_security_group = self._group(
            f"{name}-api",
            "EKS API from inside the VPC (the deploy runner)",
            tags,
            [{**https, "cidr_blocks": [str(args.environment.vpc_cidr)]}],
        )
        # Ingress comes from `admit` rules once the cluster (and so its security group) exists.
        self.database_security_group = self._group(f"{name}-database", "Postgres from the cluster only", tags)
        self.cache_security_group = self._group(f"{name}-cache", "Redis from the cluster only", tags)
        self.name = name
        self.register_outputs({"vpc_id": self.vpc.id, "private_subnet_ids": self.private_subnet_ids})

    def admit(self, source: str, source_group_id: pulumi.Input[str]) -> None:
        """Let one security group reach Postgres and Redis. The EKS-made cluster security group is the
        one on every managed node (and so every pod, which the VPC CNI places on the node's interfaces)
        when the node group has no launch template of its own:
        https://docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html"""
        for store, group, port in (
            ("database", self.database_security_group, POSTGRES_PORT),
            ("cache", self.cache_security_group, REDIS_PORT),
        ):
            aws.vpc.SecurityGroupIngressRule(
                f"{self.name}-{store}-from-{source}",
                security_group_id=group.id,
                referenced_security_group_id=source_group_id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"from {source}",
                opts=pulumi.ResourceOptions(parent=group),
            )

    def _group(
        self, name: str, description: str, tags: dict[str, str], ingress: list[dict] | None = None
    ) -> aws.ec2.SecurityGroup:
        return aws.ec2.SecurityGroup(
            name,
            vpc_id=self.vpc.id,
            description=description,
            ingress=ingress,
            tags={**tags, "Name": name},
            egress=[
                {
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "outbound: AWS APIs, OpenAI, image registry",
                }
            ],
            opts=pulumi.ResourceOptions(parent=self.vpc),
        )
