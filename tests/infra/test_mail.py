"""Invitations and sign-in links leave production through Amazon SES's SMTP interface: the app has the
credentials, the address and a way out, the credentials may do nothing but send, and the domain's DKIM
records are in the zone."""

from __future__ import annotations

import json

import yaml

from infra.facts import PRIVATE_RANGES
from infra.facts import load as facts

from .conftest import ROOT, Stack
from .mock_stack import dkim_tokens, smtp_password
from .test_invariants import k8s_object, policies, resource_id

ACCESS_KEY = "aws:iam/accessKey:AccessKey"
IDENTITY = "aws:ses/domainIdentity:DomainIdentity"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"


def stack_config(stack: Stack) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack.name}.yaml").read_text())["config"]


def app_config(stack: Stack) -> dict[str, str]:
    return k8s_object(stack, "ConfigMap", "chatwizard-config")["inputs"]["data"]


def app_secrets(stack: Stack) -> dict[str, str]:
    return k8s_object(stack, "Secret", "chatwizard-secrets")["inputs"]["stringData"]["secret"]


def test_the_apps_smtp_login_is_the_access_key_of_the_sending_user(stack: Stack):
    key = stack.one(ACCESS_KEY)
    assert app_config(stack)["CHATWIZARD_SMTP_USER"] == resource_id(key)
    password = app_secrets(stack)["CHATWIZARD_SMTP_PASSWORD"]
    assert password == smtp_password(key["name"])  # the key's SigV4 SMTP password, not a config value
    assert "CHATWIZARD_SMTP_PASSWORD" not in app_config(stack)


def test_the_app_sends_through_ses_in_the_stacks_region_with_starttls(stack: Stack):
    settings = app_config(stack)
    assert settings["CHATWIZARD_SMTP_HOST"] == f"email-smtp.{stack_config(stack)['aws:region']}.amazonaws.com"
    assert (settings["CHATWIZARD_SMTP_PORT"], settings["CHATWIZARD_SMTP_STARTTLS"]) == ("587", "true")
    assert settings["CHATWIZARD_SMTP_SENDER"].endswith(f"<{facts().environments[stack.name].mail_sender}>")


def test_only_the_app_reaches_the_smtp_port_and_only_on_public_addresses(stack: Stack):
    port = int(app_config(stack)["CHATWIZARD_SMTP_PORT"])
    reaching = {
        name: [peer for rule in spec.get("egress", []) if any(p["port"] == port for p in rule.get("ports", []))
               for peer in rule["to"]]
        for name, spec in policies(stack).items()
    }
    public = {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}
    assert {name: peers for name, peers in reaching.items() if peers} == {"chatwizard-app": [public]}


def test_the_smtp_user_may_only_send_from_the_identity_as_the_sender(stack: Stack):
    user = stack.one(ACCESS_KEY)["inputs"]["user"]
    granted = [r for r in stack.resources if r["type"].startswith("aws:iam/") and r["inputs"].get("user") == user]
    assert sorted(r["type"] for r in granted) == [ACCESS_KEY, "aws:iam/userPolicy:UserPolicy"]
    (policy,) = [json.loads(r["inputs"]["policy"]) for r in granted if r["type"] != ACCESS_KEY]
    (statement,) = policy["Statement"]
    sender = facts().environments[stack.name].mail_sender
    assert statement["Effect"] == "Allow" and statement["Action"] in ("ses:SendRawEmail", ["ses:SendRawEmail"])
    assert statement["Resource"] == stack.one(IDENTITY)["arn"]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": sender}}


def test_the_sending_domains_dkim_and_mail_from_records_are_in_the_zone(stack: Stack):
    domain = facts().environments[stack.name].mail_domain
    assert stack.inputs(IDENTITY)["domain"] == domain
    records = [r["inputs"] for r in stack.of_type(DNS_RECORD)]
    assert {r["zoneId"] for r in records} == {stack_config(stack)["chatwizard:cloudflareZoneId"]}
    dkim = {(r["name"], r["content"]) for r in records if r["type"] == "CNAME" and "_domainkey" in r["name"]}
    tokens = dkim_tokens(stack.one("aws:ses/domainDkim:DomainDkim")["name"])
    assert dkim == {(f"{t}._domainkey.{domain}", f"{t}.dkim.amazonses.com") for t in tokens}
    assert not any(r.get("proxied") for r in records if "_domainkey" in r["name"])  # mail servers must see them
    mail_from = stack.inputs("aws:ses/mailFrom:MailFrom")["mailFromDomain"]
    region = stack_config(stack)["aws:region"]
    by_type = {r["type"]: r for r in records if r["name"] == mail_from}
    assert by_type["MX"]["content"] == f"feedback-smtp.{region}.amazonses.com"
    assert "include:amazonses.com" in by_type["TXT"]["content"]
