"""A VPC across three availability zones: public subnets for the load balancer and NAT, private subnets
for nodes and data stores, and security groups that let only the app's nodes reach Postgres and Redis."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

import pulumi
import pulumi_aws as aws

from infra.ports import POSTGRES_PORT, REDIS_PORT

TYPE = "chatwizard:infra:Network"


@dataclass(frozen=True)
class NetworkArgs:
    cidr: IPv4Network
    zones: list[str]
    nat_gateway_per_zone: bool
    edge_cidrs: pulumi.Input[list[str]]  # who may reach the load balancer: Cloudflare only
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=str(args.cidr),
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
        blocks = list(args.cidr.subnets(new_prefix=args.cidr.prefixlen + 4))
        self.public_subnet_ids: list[pulumi.Output[str]] = []
        self.private_subnet_ids: list[pulumi.Output[str]] = []
        nat_ids: list[pulumi.Output[str]] = []
        for index, zone in enumerate(args.zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=str(blocks[index]),
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
                cidr_block=str(blocks[8 + index]),
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

        self.edge_security_group = self._group(
            f"{name}-edge",
            "HTTPS from Cloudflare's edge only",
            tags | {"role": "edge"},
            [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": args.edge_cidrs}],
        )
        self.node_security_group = self._group(
            f"{name}-nodes",
            "Kubernetes nodes; HTTPS from the load balancer",
            tags,
            [
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "security_groups": [self.edge_security_group.id],
                },
                {"protocol": "-1", "from_port": 0, "to_port": 0, "self": True},
            ],
        )
        self.database_security_group = self._group(
            f"{name}-database",
            "Postgres from the app's nodes only",
            tags,
            [
                {
                    "protocol": "tcp",
                    "from_port": POSTGRES_PORT,
                    "to_port": POSTGRES_PORT,
                    "security_groups": [self.node_security_group.id],
                }
            ],
        )
        self.cache_security_group = self._group(
            f"{name}-cache",
            "Redis from the app's nodes only",
            tags,
            [
                {
                    "protocol": "tcp",
                    "from_port": REDIS_PORT,
                    "to_port": REDIS_PORT,
                    "security_groups": [self.node_security_group.id],
                }
            ],
        )
        self.register_outputs({"vpc_id": self.vpc.id, "private_subnet_ids": self.private_subnet_ids})

    def _group(
        self, name: str, description: str, tags: dict[str, str], ingress: list[dict]
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
