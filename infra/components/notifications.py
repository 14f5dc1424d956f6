"""Where cloud-side alarms go, and the monthly cost budget: AWS Budgets e-mails at 80 % and 100 % of
the budget (forecast) and at 150 % actual, the seed's "cost usage > 150 % of budget" warning."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

TYPE = "chatwizard:infra:Notifications"


@dataclass(frozen=True)
class NotificationsArgs:
    email: str
    monthly_budget_usd: float
    tags: dict[str, str]


# Who publishes to the alarm topic. A service publishing to a KMS-encrypted topic needs the key itself, or
# SNS drops its messages: https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
PUBLISHERS = ["cloudwatch.amazonaws.com"]


def alarm_key_policy(account_id: str) -> str:
    """The account administers the key; the publishing services may only encrypt for this account's topic."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "AlarmPublishers",
                    "Effect": "Allow",
                    "Principal": {"Service": PUBLISHERS},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        }
    )


class Notifications(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: NotificationsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-alarms",
            description="SNS alarm topic encryption",
            enable_key_rotation=True,
            policy=aws.get_caller_identity_output().account_id.apply(alarm_key_policy),
            tags=args.tags,
            opts=child,
        )
        self.topic = aws.sns.Topic(f"{name}-alarms", kms_master_key_id=key.id, tags=args.tags, opts=child)
        aws.sns.TopicSubscription(
            f"{name}-alarms-email",
            topic=self.topic.arn,
            protocol="email",
            endpoint=args.email,
            opts=pulumi.ResourceOptions(parent=self.topic),
        )
        thresholds = [(80, "FORECASTED"), (100, "FORECASTED"), (150, "ACTUAL")]
        aws.budgets.Budget(
            f"{name}-monthly",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_unit="USD",
            limit_amount=f"{args.monthly_budget_usd:.2f}",
            tags=args.tags,
            cost_filters=[
                {"name": "TagKeyValue", "values": [f"user:environment${args.tags['environment']}"]}
            ],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "threshold": percent,
                    "threshold_type": "PERCENTAGE",
                    "notification_type": kind,
                    "subscriber_email_addresses": [args.email],
                }
                for percent, kind in thresholds
            ],
            opts=child,
        )
        self.register_outputs({"topic_arn": self.topic.arn})
