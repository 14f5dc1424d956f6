"""Where cloud-side alarms go, and the monthly cost budget: AWS Budgets e-mails at 80 % and 100 % of
the budget (forecast) and at 150 % actual, the seed's "cost usage > 150 % of budget" warning."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

TYPE = "chatwizard:infra:Notifications"


@dataclass(frozen=True)
class NotificationsArgs:
    email: str
    monthly_budget_usd: float
    tags: dict[str, str]


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
