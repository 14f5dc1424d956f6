"""Run the real Pulumi program for one stack under Pulumi's mock runtime and print what it declared.

    python -m tests.infra.mock_stack staging [--set chatwizard:key=value ...] [--unset chatwizard:key]

Prints JSON: every resource (type, name, URN, inputs, provider, protect and retainOnDelete, ARN) and the
stack outputs. The cloud APIs are the only thing mocked: resource inputs are exactly what `pulumi up`
would send, and `secure:` values are replaced by test secrets. A bad stack config exits non-zero with the program's error message.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.mocks import MockMonitor

from infra import config as stack_config
from infra import program

ROOT = Path(__file__).parents[2]
LOAD_BALANCER = "k8s-ingress-0123456789.elb.us-east-1.amazonaws.com"
ACCOUNT_ID = "123456789012"
DEBIAN_IMAGE = "ami-0d3b1ca2e5c4f0d12"
# What the region's RDS CA bundle would hold: a CA certificate, made here (AWS's truststore is a cloud API).
RDS_CA_BUNDLE_FILE = ROOT / "tests" / "infra" / "rds-ca-test.pem"


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value on the wire


def readable(value: Any) -> Any:
    """Secret values as {"secret": value}, so tests can check what Pulumi would encrypt."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return {"secret": readable(value["value"])}
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


def test_secret(key: str) -> str:
    return f"test-secret-{key.replace(':', '-')}-0123456789"


def stack_settings(stack: str, overrides: list[str], unset: list[str]) -> tuple[dict[str, str], list[str]]:
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    values, secret_keys = {}, []
    for key, value in raw.items():
        if isinstance(value, dict) and "secure" in value:
            values[key], _ = test_secret(key), secret_keys.append(key)
        else:  # the engine hands the program lists and numbers as JSON text
            values[key] = value if isinstance(value, str) else json.dumps(value)
    for assignment in overrides:
        key, _, value = assignment.partition("=")
        values[key] = value
    for key in unset:
        values.pop(key, None)
    return values, secret_keys


def dkim_tokens(name: str) -> list[str]:
    """What SES answers for a DomainDkim: three tokens."""
    return [f"token{index}{name.replace('-', '')}" for index in range(3)]


def smtp_password(name: str) -> str:
    """An AccessKey's ses_smtp_password_v4, unlike any configured secret."""
    return f"ses-smtp-password-of-{name}"


def computed_outputs(args: MockResourceArgs, region: str, arn_suffix: str) -> dict[str, Any]:
    """What the providers would compute: endpoints, ARNs (in the region of the resource's provider, unique
    even for two resources of one type and name), certificates."""
    name = args.name
    by_type: dict[str, dict[str, Any]] = {
        "aws:rds/instance:Instance": {
            "address": f"{name}.abc123.us-east-1.rds.amazonaws.com",
            "identifier": name,
        },
        "aws:eks/cluster:Cluster": {
            "name": name,
            "vpcConfig": {**args.inputs.get("vpcConfig", {}), "clusterSecurityGroupId": f"{name}-cluster-sg-id"},
            "endpoint": f"https://{name}.eks.amazonaws.com",
            "certificateAuthority": {"data": "Y2VydGlmaWNhdGU="},
        },
        "aws:elasticache/replicationGroup:ReplicationGroup": {
            "primaryEndpointAddress": f"master.{name}.abc123.use1.cache.amazonaws.com"
        },
        "aws:s3/bucket:Bucket": {"bucket": f"{name}-0123"},
        "tls:index/privateKey:PrivateKey": {"privateKeyPem": f"-----BEGIN PRIVATE KEY----- {name}"},
        "tls:index/certRequest:CertRequest": {
            "certRequestPem": f"-----BEGIN CERTIFICATE REQUEST----- {name}"
        },
        "tls:index/selfSignedCert:SelfSignedCert": {"certPem": f"-----BEGIN CERTIFICATE----- {name}"},
        "tls:index/locallySignedCert:LocallySignedCert": {"certPem": f"-----BEGIN CERTIFICATE----- {name}"},
        "cloudflare:index/originCaCertificate:OriginCaCertificate": {
            "certificate": f"-----BEGIN CERTIFICATE----- {name}"
        },
        "aws:ses/domainDkim:DomainDkim": {"dkimTokens": dkim_tokens(name)},
        "aws:iam/accessKey:AccessKey": {"sesSmtpPasswordV4": smtp_password(name)},
        "kubernetes:core/v1:Service": {
            "status": {"loadBalancer": {"ingress": [{"hostname": LOAD_BALANCER}]}}
        },
    }
    return {"arn": f"arn:aws:mock:{region}:{ACCOUNT_ID}:{name}{arn_suffix}", "name": name, **by_type.get(args.typ, {})}


class RecordingMocks(Mocks):
    def __init__(self) -> None:
        self.last_inputs: dict = {}  # of the resource being registered; the monitor files them by URN
        self.regions: dict[str, str] = {}  # by the id of each aws provider
        self.seen: Counter[tuple[str, str]] = Counter()
        self.subnets: dict[str, str] = {}  # id -> CIDR block

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        self.last_inputs = args.inputs
        if args.typ == "pulumi:providers:aws":
            self.regions[f"{args.name}-id"] = args.inputs["region"]
        provider_id = (args.provider or "").rpartition("::")[2]
        self.seen[args.typ, args.name] += 1
        suffix = f"-{self.seen[args.typ, args.name]}" if self.seen[args.typ, args.name] > 1 else ""
        computed = computed_outputs(args, self.regions.get(provider_id, "us-east-1"), suffix)
        if args.typ == "aws:ec2/instance:Instance":  # EC2 picks an address in the instance's subnet
            computed["privateIp"] = str(next(ip_network(self.subnets[args.inputs["subnetId"]]).hosts()) + 9)
        outputs = {**computed, **args.inputs}
        if "vpcConfig" in computed:  # inputs and computed fields in one object
            outputs["vpcConfig"] = computed["vpcConfig"]
        if args.typ == "aws:ec2/subnet:Subnet":
            self.subnets[f"{args.name}-id"] = args.inputs["cidrBlock"]
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> dict:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/deployer", "userId": "AID"}
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": DEBIAN_IMAGE, "name": "debian-12-amd64-20260101-0000", "ownerId": args.args["owners"][0]}
        if args.token == "kubernetes:yaml:decode":
            return {"result": [doc for doc in yaml.safe_load_all(args.args["text"]) if doc]}
        raise NotImplementedError(f"no mock for the call {args.token}")


class ParentRecordingMonitor(MockMonitor):
    """Remembers each resource's parent and what it waits for (depends_on and inputs taken from other
    resources), so tests can check that components own their children and the order `up` creates them in."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.lock = threading.Lock()  # one registration at a time: its inputs are the mocks' last ones
        self.inputs: dict[str, dict] = {}
        self.parents: dict[str, str] = {}
        self.dependencies: dict[str, list[str]] = {}
        self.providers: dict[str, str] = {}
        self.options: dict[str, dict[str, bool]] = {}

    def RegisterResource(self, request):
        with self.lock:
            response = super().RegisterResource(request)
            self.inputs[response.urn] = self.mocks.last_inputs
        self.parents[response.urn] = request.parent
        self.dependencies[response.urn] = list(request.dependencies)
        self.providers[response.urn] = request.provider
        self.options[response.urn] = {"protect": request.protect, "retainOnDelete": request.retainOnDelete}
        return response

    def ReadResource(self, request):
        with self.lock:
            response = super().ReadResource(request)
            self.inputs[response.urn] = self.mocks.last_inputs
        return response


def run(stack: str, overrides: list[str], unset: list[str]) -> dict[str, Any]:
    values, secret_keys = stack_settings(stack, overrides, unset)
    pulumi.runtime.set_all_config(values, secret_keys)
    mocks = RecordingMocks()
    monitor = ParentRecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="chatwizard", stack=stack, preview=False, monitor=monitor)
    exports: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    pulumi.export = exports.__setitem__  # the program's exports, kept to resolve below
    program.ca_bundle = lambda region: RDS_CA_BUNDLE_FILE.read_text()  # AWS's truststore, not fetched here

    @pulumi.runtime.test
    def deploy() -> pulumi.Output:
        program.build(stack_config.load())
        return pulumi.Output.from_input(exports).apply(resolved.update)

    deploy()
    resources = []
    for urn in monitor.resources:
        kind, name = urn.split("::")[2].split("$")[-1], urn.split("::")[3]
        resources.append(
            {
                "urn": urn,
                "type": kind,
                "name": name,
                "parent": monitor.parents.get(urn),
                "dependencies": monitor.dependencies.get(urn, []),
                "provider": monitor.providers.get(urn) or None,  # "<provider URN>::<id>", None: the default
                "options": monitor.options.get(urn, {}),
                "arn": monitor.resources[urn].state.get("arn"),
                "inputs": readable(monitor.inputs[urn]),
            }
        )
    return {"resources": resources, "outputs": resolved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", choices=["staging", "production"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--unset", action="append", default=[], metavar="KEY")
    options = parser.parse_args()
    try:
        result = run(options.stack, options.set, options.unset)
    except stack_config.StackConfigError as error:
        sys.exit(str(error))
    json.dump(result, sys.stdout, default=str, indent=1)


if __name__ == "__main__":
    main()
