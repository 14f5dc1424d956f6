"""Mail for invitations and sign-in links (app/chatwizard/core/mail.py), through Amazon SES's SMTP interface.

The stack's sending domain (`mail_domain` in infra/facts.yaml) becomes an SES identity, verified by Easy
DKIM: its three CNAME records go in the Cloudflare zone, next to this stack's other DNS records (each
stack owns its own records; the zone-wide settings stay with the zone's owner, see edge.py). Bounces
come back to a MAIL FROM subdomain whose MX and SPF records are made here too, so SPF aligns for DMARC.

The app logs in with SMTP credentials: an IAM user whose access key SES accepts as login, and whose
only permission is to send as the sender address from this identity. The SMTP password is the secret
access key converted for the region (the provider's `ses_smtp_password_v4`); it stays in Pulumi's
state, encrypted, and reaches the app only through its Secret.

A new SES account starts in the sandbox: it sends only to verified addresses until production access
is granted (infra/README.md, docs/deploy.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_cloudflare as cloudflare

from infra.facts import Environment

TYPE = "chatwizard:infra:Mail"
DKIM_RECORDS = 3  # SES Easy DKIM always issues three tokens
MAIL_FROM_SUBDOMAIN = "bounce"
SENDER_NAME = "Chat Wizard"


@dataclass(frozen=True)
class MailArgs:
    zone_id: str  # the Cloudflare zone the domain is in
    environment: Environment  # its mail_domain and sender
    region: str  # SES's, and the SMTP password's (SigV4 is per region)
    port: int  # the SMTP port the app's NetworkPolicy lets out
    tags: dict[str, str]


def send_only_policy(identity_arn: str, sender: str) -> str:
    """May send raw mail (what SMTP sends) from the one identity, as the one sender address; nothing else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "SendAsTheSender",
                    "Effect": "Allow",
                    "Action": "ses:SendRawEmail",
                    "Resource": identity_arn,
                    "Condition": {"StringEquals": {"ses:FromAddress": sender}},
                }
            ],
        }
    )


class Mail(pulumi.ComponentResource):
    def __init__(self, name: str, args: MailArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        domain, sender = args.environment.mail_domain, args.environment.mail_sender
        identity = aws.ses.DomainIdentity(f"{name}-mail", domain=domain, opts=child)
        self._dkim_records(name, args.zone_id, identity)
        self._mail_from(name, args.zone_id, args.region, identity)
        user = aws.iam.User(f"{name}-smtp", path="/chatwizard/", tags=args.tags, opts=child)
        aws.iam.UserPolicy(
            f"{name}-smtp-send",
            user=user.name,
            policy=identity.arn.apply(lambda arn: send_only_policy(arn, sender)),
            opts=child,
        )
        key = aws.iam.AccessKey(f"{name}-smtp", user=user.name, opts=child)
        # The app's SMTP settings: non-secret, for its ConfigMap (README "Configuration").
        self.settings: dict[str, pulumi.Input[str]] = {
            "CHATWIZARD_SMTP_HOST": f"email-smtp.{args.region}.amazonaws.com",
            "CHATWIZARD_SMTP_PORT": str(args.port),
            "CHATWIZARD_SMTP_STARTTLS": "true",
            "CHATWIZARD_SMTP_SENDER": f"{SENDER_NAME} <{sender}>",
            "CHATWIZARD_SMTP_USER": key.id,
        }
        self.password = pulumi.Output.secret(key.ses_smtp_password_v4)
        self.register_outputs({"identity_arn": identity.arn})

    def _dkim_records(self, name: str, zone: str, identity: aws.ses.DomainIdentity) -> None:
        child = pulumi.ResourceOptions(parent=self)
        dkim = aws.ses.DomainDkim(f"{name}-mail", domain=identity.domain, opts=child)
        for index in range(DKIM_RECORDS):
            token = dkim.dkim_tokens[index]
            cloudflare.DnsRecord(
                f"{name}-dkim-{index}",
                zone_id=zone,
                name=pulumi.Output.format("{0}._domainkey.{1}", token, identity.domain),
                type="CNAME",
                content=pulumi.Output.format("{0}.dkim.amazonses.com", token),
                proxied=False,  # DNS only: mail servers must see SES's record
                ttl=1,
                comment="Chat Wizard mail: SES Easy DKIM",
                opts=child,
            )

    def _mail_from(self, name: str, zone: str, region: str, identity: aws.ses.DomainIdentity) -> None:
        """Bounces to bounce.<domain> (MX to SES, SPF allowing SES), so the envelope sender aligns."""
        child = pulumi.ResourceOptions(parent=self)
        domain = identity.domain.apply(lambda value: f"{MAIL_FROM_SUBDOMAIN}.{value}")
        aws.ses.MailFrom(f"{name}-mail", domain=identity.domain, mail_from_domain=domain, opts=child)
        cloudflare.DnsRecord(
            f"{name}-mail-from-mx",
            zone_id=zone,
            name=domain,
            type="MX",
            content=f"feedback-smtp.{region}.amazonses.com",
            priority=10,
            ttl=1,
            comment="Chat Wizard mail: SES bounces",
            opts=child,
        )
        cloudflare.DnsRecord(
            f"{name}-mail-from-spf",
            zone_id=zone,
            name=domain,
            type="TXT",
            content='"v=spf1 include:amazonses.com ~all"',
            ttl=1,
            comment="Chat Wizard mail: SES may send for the MAIL FROM domain",
            opts=child,
        )
