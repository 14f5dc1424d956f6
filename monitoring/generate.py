"""Write monitoring/rules/*.yml from monitoring/config.yaml: `python -m monitoring.generate`.

Every alert gets `severity`, `summary`, `description`, `runbook_url` (from one pattern) and, where a
warning has a matching critical, an `inhibit_group` label so Alertmanager can silence the warning
while the critical fires. Ratios carry a minimum-traffic guard so three requests cannot page anyone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
CONFIG = yaml.safe_load((HERE / "config.yaml").read_text())
RULES_DIR = HERE / "rules"
PROMETHEUS_RULE = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"
WINDOWS = ("1m", "5m", "30m", "1h", "6h")


def alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str,
          group: str | None = None) -> dict[str, Any]:
    labels = {"severity": severity} | ({"inhibit_group": group} if group else {})
    return {
        "alert": name, "expr": " ".join(expr.split()), "for": for_, "labels": labels,
        "annotations": {"summary": summary, "description": description,
                        "runbook_url": CONFIG["runbook_url"].format(alert=name)},
    }


def record(name: str, expr: str) -> dict[str, str]:
    return {"record": name, "expr": " ".join(expr.split())}


def recording_rules() -> list[dict[str, str]]:
    job, excluded = CONFIG["app_job"], CONFIG["latency_excluded_routes"]
    rules = []
    for w in WINDOWS:
        rules += [
            record(f"chatwizard:http_requests:rate{w}", f'sum(rate(chatwizard_http_requests_total{{job="{job}"}}[{w}]))'),
            record(f"chatwizard:http_errors:ratio_rate{w}",
                   f'sum(rate(chatwizard_http_requests_total{{job="{job}",status=~"5.."}}[{w}])) '
                   f'/ sum(rate(chatwizard_http_requests_total{{job="{job}"}}[{w}]))'),
        ]
    for w in ("1m", "5m"):
        rules.append(record(
            f"chatwizard:http_request_duration_seconds:p95_{w}",
            f'histogram_quantile(0.95, sum by (le) (rate(chatwizard_http_request_duration_seconds_bucket'
            f'{{job="{job}",route!~"{excluded}"}}[{w}])))'))
    for w in ("5m", "30m"):
        rules += [
            record(f"chatwizard:chat_cache_lookups:rate{w}",
                   f'sum(rate(chatwizard_cache_requests_total{{job="{job}",cache="exact"}}[{w}]))'),
            record(f"chatwizard:chat_cache:hit_ratio_{w}",
                   f'sum(rate(chatwizard_cache_requests_total{{job="{job}",cache=~"exact|semantic",result="hit"}}[{w}])) '
                   f'/ sum(rate(chatwizard_cache_requests_total{{job="{job}",cache="exact"}}[{w}]))'),
        ]
    rules += [
        record("chatwizard:llm_cost_usd:projected_daily", f'sum(rate(chatwizard_llm_cost_usd_total{{job="{job}"}}[1h])) * 86400'),
        record("chatwizard:db_pool:efficiency_5m",
               f'sum(rate(chatwizard_db_pool_acquisitions_total{{job="{job}",waited="no"}}[5m])) '
               f'/ sum(rate(chatwizard_db_pool_acquisitions_total{{job="{job}"}}[5m]))'),
        record("chatwizard:memory:usage_ratio",
               f'max(chatwizard_memory_rss_bytes{{job="{job}"}} / chatwizard_memory_limit_bytes{{job="{job}"}})'),
    ]
    return rules


def critical_alerts() -> list[dict[str, Any]]:
    c, min_rate = CONFIG, CONFIG["min_request_rate"]
    budget = 1 - c["slo"]["availability"]
    return [
        alert("ChatWizardHighLatency",
              f'chatwizard:http_request_duration_seconds:p95_1m > {c["latency"]["critical_p95_s"]} '
              f"and chatwizard:http_requests:rate1m > {min_rate}",
              "15s", "critical", "API p95 latency above 5 s",
              f'95th percentile of API request latency over the last minute is above {c["latency"]["critical_p95_s"]} s.',
              "latency"),
        alert("ChatWizardHighErrorRate",
              f'chatwizard:http_errors:ratio_rate5m > {c["error_rate"]["critical_ratio"]} '
              f"and chatwizard:http_requests:rate5m > {min_rate}",
              "15s", "critical", "More than 5 % of API requests fail with 5xx",
              "More than 5 % of API requests over the last 5 minutes answered 5xx.", "errors"),
        alert("ChatWizardDatabaseConnectionFailures",
              '(sum(increase(chatwizard_db_connection_failures_total{node="primary"}[1m])) > 0) '
              'or (min(chatwizard_db_up{node="primary"}) == 0) or (min(pg_up) == 0)',
              "15s", "critical", "The app cannot reach the Postgres primary",
              "Connections or pool acquisitions to the primary are failing, or the primary is down. "
              "Writes fail with 503; reads may still be served by the replica.", "database"),
        alert("ChatWizardCacheHitRateCritical",
              f'chatwizard:chat_cache:hit_ratio_5m < {c["cache"]["critical_hit_ratio"]} '
              f'and chatwizard:chat_cache_lookups:rate5m > {c["min_cache_lookup_rate"]}',
              "2m", "critical", "Chat cache hit rate below 30 %",
              "Fewer than 30 % of chat questions are answered from the cache: LLM cost and latency are up.",
              "cache"),
        alert("ChatWizardMemoryHigh", f'chatwizard:memory:usage_ratio > {c["memory"]["critical_ratio"]}',
              "30s", "critical", "App memory above 85 % of its limit",
              "Resident memory of the app (master + workers) is above 85 % of its limit; "
              "the OOM killer is close.", "memory"),
        alert("ChatWizardTargetDown", f'up{{job="{c["app_job"]}"}} == 0', "30s", "critical",
              "Prometheus cannot scrape the app",
              "The app's metrics endpoint on {{ $labels.instance }} does not answer: the app is down or unreachable."),
        alert("ChatWizardProbeFailing", 'probe_success{job="blackbox"} == 0', "30s", "critical",
              "Outside-in probe failing",
              "The blackbox probe of {{ $labels.instance }} gets no 200 (public health or authenticated endpoint); "
              "users are likely affected."),
        alert("ChatWizardErrorBudgetBurnFast",
              f"chatwizard:http_errors:ratio_rate1h > {14.4 * budget:.4f} "
              f"and chatwizard:http_errors:ratio_rate5m > {14.4 * budget:.4f} "
              f"and chatwizard:http_requests:rate1h > {min_rate}",
              "2m", "critical", "Error budget burning 14.4x faster than the 99.5 % SLO allows",
              "At this rate 2 % of the monthly error budget goes in an hour (multi-window: 1 h and 5 min).",
              "errors"),
    ]


def warning_alerts() -> list[dict[str, Any]]:
    c, min_rate, job = CONFIG, CONFIG["min_request_rate"], CONFIG["app_job"]
    budget, traffic, sec = 1 - c["slo"]["availability"], c["traffic"], c["security"]
    now, last_week = "chatwizard:http_requests:rate30m", "chatwizard:http_requests:rate30m offset 1w"
    return [
        alert("ChatWizardLatencyHigh",
              f'chatwizard:http_request_duration_seconds:p95_5m > {c["latency"]["warning_p95_s"]} '
              f"and chatwizard:http_requests:rate5m > {min_rate}",
              c["latency"]["warning_for"], "warning", "API p95 latency above 3 s for 15 minutes",
              "The 95th percentile of API latency has stayed above the 3 s target.", "latency"),
        alert("ChatWizardErrorBudgetBurnSlow",
              f"chatwizard:http_errors:ratio_rate6h > {6 * budget:.4f} "
              f"and chatwizard:http_errors:ratio_rate30m > {6 * budget:.4f} "
              f"and chatwizard:http_requests:rate6h > {min_rate}",
              "15m", "warning", "Error budget burning 6x faster than the 99.5 % SLO allows",
              "At this rate 5 % of the monthly error budget goes in 6 hours (6 h and 30 min windows).",
              "errors"),
        alert("ChatWizardCacheHitRateDegraded",
              f'chatwizard:chat_cache:hit_ratio_30m < {c["cache"]["warning_hit_ratio"]} '
              f'and chatwizard:chat_cache_lookups:rate30m > {c["min_cache_lookup_rate"]}',
              "15m", "warning", "Chat cache hit rate under the 70 % target",
              "The cache answers fewer questions than the 70 % target over 30 minutes.", "cache"),
        alert("ChatWizardLLMCostOverBudget",
              f'chatwizard:llm_cost_usd:projected_daily > {c["cost"]["warning_factor"] * c["cost"]["daily_budget_usd"]:.2f}',
              "15m", "warning", "LLM spend on course for more than 150 % of budget",
              f'At the last hour\'s rate, LLM spend exceeds 150 % of the daily budget (${c["cost"]["daily_budget_usd"]:.2f}).'),
        alert("ChatWizardUnusualTraffic",
              f'({now} > {traffic["unusual_factor"]} * ({last_week}) or {now} < ({last_week}) / {traffic["unusual_factor"]}) '
              f'and ({last_week}) > {traffic["min_last_week_rate"]}',
              "15m", "warning", "Traffic differs from the same time last week by more than x2",
              "Request rate over the last 30 minutes is more than double or less than half of the same "
              "30 minutes a week ago: an attack, a broken client, or an outage upstream."),
        alert("ChatWizardReplicaLagHigh", f'max(chatwizard_db_replica_lag_seconds{{job="{job}"}}) > {c["replica"]["max_lag_s"]}',
              "1m", "warning", "Read replica lagging behind the primary",
              "Replica lag is above the limit; reads have moved to the primary, which now carries all load."),
        alert("ChatWizardReplicaDown", f'min(chatwizard_db_up{{job="{job}",node="replica"}}) == 0', "1m", "warning",
              "Read replica unreachable", "The app cannot reach the read replica; all reads go to the primary."),
        alert("ChatWizardRedisDown",
              f'(max(chatwizard_redis_fallback_active{{job="{job}"}}) == 1) or (min(redis_up) == 0)', "1m", "warning",
              "Redis unreachable: serving without cache",
              "The app runs without Redis: no cache, so LLM cost and latency rise."),
        alert("ChatWizardLLMDegraded",
              f'(sum(rate(chatwizard_llm_errors_total{{job="{job}"}}[5m])) / sum(rate(chatwizard_llm_requests_total{{job="{job}"}}[5m])) > 0.2 '
              f'and sum(rate(chatwizard_llm_requests_total{{job="{job}"}}[5m])) > 0.05) '
              f'or (max(chatwizard_llm_circuit_open{{job="{job}"}}) == 1)',
              "5m", "warning", "LLM calls failing; answers degrade to catalogue-composed ones",
              "More than 20 % of LLM calls fail or the circuit breaker is open."),
        alert("ChatWizardAuthFailuresSpike",
              f'sum(rate(chatwizard_auth_failures_total{{job="{job}"}}[5m])) > {sec["auth_failures_per_s"]}',
              "5m", "warning", "Spike of rejected API keys",
              "Many requests with missing, invalid, revoked or expired keys: credential stuffing or a broken client."),
        alert("ChatWizardAuthzDenialsSpike",
              f'sum(rate(chatwizard_authz_denials_total{{job="{job}"}}[5m])) > {sec["denials_per_s"]}',
              "5m", "warning", "Spike of authorisation denials",
              "Valid keys are calling endpoints their role may not use: probing or a misconfigured client."),
        alert("ChatWizardRateLimitingSpike",
              f'sum(rate(chatwizard_rate_limited_total{{job="{job}"}}[5m])) > {sec["rate_limited_per_s"]}',
              "5m", "warning", "Spike of rate-limited requests (429)",
              "Clients are hitting their rate limits: abuse, a runaway client, or limits set too low."),
    ]


def rule_files() -> dict[str, dict[str, Any]]:
    watchdog = alert("Watchdog", "vector(1)", "0s", "none", "Alerting pipeline is alive",
                     "Always firing. If it stops arriving, Prometheus or Alertmanager is broken (dead man's switch).")
    return {
        "recording.yml": {"groups": [{"name": "chatwizard.recording", "interval": "5s",
                                      "rules": recording_rules()}]},
        "critical.yml": {"groups": [{"name": "chatwizard.critical", "rules": critical_alerts()}]},
        "warning.yml": {"groups": [{"name": "chatwizard.warning", "rules": warning_alerts()}]},
        "meta.yml": {"groups": [{"name": "chatwizard.meta", "rules": [watchdog]}]},
    }


def render(document: dict[str, Any]) -> str:
    header = "# Generated by `python -m monitoring.generate` from monitoring/config.yaml. Do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=120)


def prometheus_rule() -> dict[str, Any]:
    """The same rules as a PrometheusRule for the cluster's Prometheus operator (k8s/base/)."""
    groups = [group for document in rule_files().values() for group in document["groups"]]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "chatwizard", "labels": {"release": "kube-prometheus-stack"}},
            "spec": {"groups": groups}}


def main() -> None:
    RULES_DIR.mkdir(exist_ok=True)
    for name, document in rule_files().items():
        (RULES_DIR / name).write_text(render(document))
        print(f"wrote {RULES_DIR / name}")
    PROMETHEUS_RULE.write_text(render(prometheus_rule()))
    print(f"wrote {PROMETHEUS_RULE}")


if __name__ == "__main__":
    main()
