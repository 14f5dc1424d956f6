"""Write monitoring/rules/*.yml from monitoring/config.yaml: `python -m monitoring.generate`.

Every alert gets `severity`, `summary`, `description`, `runbook_url` (from one pattern) and, where a
warning has a matching critical, an `inhibit_group` label so Alertmanager can silence the warning
while the critical fires. SLIs count user requests only (probes left out); ratios carry a minimum-traffic
guard so three requests cannot page anyone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
CONFIG = yaml.safe_load((HERE / "config.yaml").read_text())
RULES_DIR = HERE / "rules"
PROMETHEUS_RULE = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"
FAST_INTERVAL = "5s"     # recording windows up to 1 h and the criticals: the one-minute detection budget
LONG_INTERVAL = "1m"     # windows of 2 h and more: a 3-day rate every 5 s would cost for nothing
PERIOD_INTERVAL = "5m"   # 5-minute increases summed over the 30-day SLO period
LONG_RULES = "recording-long.yml"  # apart, so promtool runs that need no day-long window skip them


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


def seconds(window: str) -> int:
    return int(window[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[window[-1]]


def user_traffic() -> str:
    """The selector of user requests: the app's job, probes left out."""
    return f'job="{CONFIG["app_job"]}",route!~"{CONFIG["probe_routes"]}"'


def timed_traffic() -> str:
    """The selector of user requests whose latency counts: probes and long-lived streams left out."""
    return f'job="{CONFIG["app_job"]}",route!~"{CONFIG["latency_excluded_routes"]}|{CONFIG["probe_routes"]}"'


def slo_windows() -> list[str]:
    """Every window a ratio is recorded over: the fast criticals', the 5 and 30 minute ones, the SLO's."""
    burns = CONFIG["slo"]["burn_alerts"]
    windows = {CONFIG["fast"]["window"], "5m", "30m"} | {b[w] for b in burns for w in ("long", "short")}
    return sorted(windows, key=seconds)


def http_rules(w: str) -> list[dict[str, str]]:
    users, errors = user_traffic(), f'{user_traffic()},status=~"5.."'
    return [
        record(f"chatwizard:http_requests:rate{w}", f"sum(rate(chatwizard_http_requests_total{{{users}}}[{w}]))"),
        record(f"chatwizard:http_errors:rate{w}", f"sum(rate(chatwizard_http_requests_total{{{errors}}}[{w}]))"),
        record(f"chatwizard:http_errors:ratio_rate{w}", f"chatwizard:http_errors:rate{w} / chatwizard:http_requests:rate{w}"),
    ]


def latency_rules() -> list[dict[str, str]]:
    c = CONFIG
    bucket = f"chatwizard_http_request_duration_seconds_bucket{{{timed_traffic()}"
    rules = [record(f"chatwizard:http_request_duration_seconds:p95_{w}",
                    f"histogram_quantile(0.95, sum by (le) (rate({bucket}}}[{w}])))")
             for w in (c["fast"]["window"], "1m", "5m")]
    page, w = c["latency"]["critical_p95_s"], c["fast"]["window"]
    rules.append(record(f"chatwizard:http_slow_requests:rate{w}",  # slower than the critical p95
                        f'sum(rate({bucket},le="+Inf"}}[{w}])) - sum(rate({bucket},le=~"{page}|{float(page)}"}}[{w}]))'))
    return rules


def cache_rules() -> list[dict[str, str]]:
    job, rules = CONFIG["app_job"], []
    for w in (CONFIG["fast"]["window"], "5m", "30m"):
        rules += [
            record(f"chatwizard:chat_cache_lookups:rate{w}",
                   f'sum(rate(chatwizard_cache_requests_total{{job="{job}",cache="exact"}}[{w}]))'),
            record(f"chatwizard:chat_cache:hit_ratio_{w}",
                   f'sum(rate(chatwizard_cache_requests_total{{job="{job}",cache=~"exact|semantic",result="hit"}}[{w}])) '
                   f"/ chatwizard:chat_cache_lookups:rate{w}"),
        ]
    return rules


def recording_rules() -> list[dict[str, str]]:
    job = CONFIG["app_job"]
    short = [w for w in slo_windows() if seconds(w) <= 3600]
    return [
        *(rule for w in short for rule in http_rules(w)), *latency_rules(), *cache_rules(),
        record("chatwizard:llm_cost_usd:projected_daily", f'sum(rate(chatwizard_llm_cost_usd_total{{job="{job}"}}[1h])) * 86400'),
        record("chatwizard:db_pool:efficiency_5m",
               f'sum(rate(chatwizard_db_pool_acquisitions_total{{job="{job}",waited="no"}}[5m])) '
               f'/ sum(rate(chatwizard_db_pool_acquisitions_total{{job="{job}"}}[5m]))'),
        record("chatwizard:memory:usage_ratio",
               f'max(chatwizard_memory_rss_bytes{{job="{job}"}} / chatwizard_memory_limit_bytes{{job="{job}"}})'),
    ]


def long_recording_rules() -> list[dict[str, str]]:
    long = [w for w in slo_windows() if seconds(w) > 3600]
    return [*(rule for w in long for rule in http_rules(w)),
            record("chatwizard:llm_cost_usd:spent_24h",
                   f'sum(increase(chatwizard_llm_cost_usd_total{{job="{CONFIG["app_job"]}"}}[24h]))')]


def period_rules() -> list[dict[str, str]]:
    """The 30-day figures from 5-minute increases: 8,640 points a series instead of half a million raw
    samples, and honest only while Prometheus keeps the whole period (retention > 30 days)."""
    users, period = user_traffic(), CONFIG["slo"]["period"]
    budget = 1 - CONFIG["slo"]["availability"]
    return [
        record("chatwizard:http_requests:increase5m", f"sum(increase(chatwizard_http_requests_total{{{users}}}[5m]))"),
        record("chatwizard:http_errors:increase5m",
               f'sum(increase(chatwizard_http_requests_total{{{users},status=~"5.."}}[5m]))'),
        record(f"chatwizard:slo_availability:ratio_{period}",
               f"1 - sum_over_time(chatwizard:http_errors:increase5m[{period}]) "
               f"/ sum_over_time(chatwizard:http_requests:increase5m[{period}])"),
        record(f"chatwizard:slo_error_budget:remaining_{period}",
               f"1 - (1 - chatwizard:slo_availability:ratio_{period}) / {budget:.4f}"),
        record("chatwizard:probe_success:avg5m", 'avg by (instance) (avg_over_time(probe_success{job="blackbox"}[5m]))'),
        record(f"chatwizard:probe_success:ratio_{period}", f"avg_over_time(chatwizard:probe_success:avg5m[{period}])"),
    ]


def burn_alerts() -> list[dict[str, Any]]:
    slo, min_rate = CONFIG["slo"], CONFIG["min_request_rate"]
    budget, target = 1 - slo["availability"], f'{slo["availability"] * 100:g} %'
    alerts = []
    for b in slo["burn_alerts"]:
        bar, share = b["factor"] * budget, b["factor"] * seconds(b["long"]) / seconds(slo["period"])
        alerts.append(alert(
            b["alert"],
            f'chatwizard:http_errors:ratio_rate{b["long"]} > {bar:.4f} and chatwizard:http_errors:ratio_rate{b["short"]} > {bar:.4f} '
            f'and chatwizard:http_requests:rate{b["long"]} > {min_rate}',
            b["for"], b["severity"], f'Error budget burning {b["factor"]:g}x as fast as the {target} SLO allows',
            f'At this rate {share:.0%} of the {slo["period"]} error budget goes in {b["long"]} '
            f'(multi-window: {b["long"]} and {b["short"]}).' + ("" if b["severity"] == "critical" else " A ticket, not a page."),
            "errors"))
    return alerts


def critical_alerts() -> list[dict[str, Any]]:
    c, min_rate, fast = CONFIG, CONFIG["min_request_rate"], CONFIG["fast"]
    w, bad = fast["window"], fast["min_bad_events"]
    enough_users = f"chatwizard:http_requests:rate5m > {min_rate}"
    page_p95, errors, hits = c["latency"]["critical_p95_s"], c["error_rate"]["critical_ratio"], c["cache"]["critical_hit_ratio"]
    return [
        alert("ChatWizardHighLatency",
              f"(chatwizard:http_request_duration_seconds:p95_{w} > {page_p95} "
              f"and chatwizard:http_slow_requests:rate{w} * {seconds(w)} >= {bad} and {enough_users}) "
              f"or (chatwizard:http_request_duration_seconds:p95_5m > {page_p95} and {enough_users})",
              fast["for"], "critical", "API p95 latency above 5 s",
              f"95th percentile of user request latency is above {page_p95} s over the last {w} "
              f"(at least {bad} requests that slow) or the last 5 minutes.", "latency"),
        alert("ChatWizardHighErrorRate",
              f"(chatwizard:http_errors:ratio_rate{w} > {errors} "
              f"and chatwizard:http_errors:rate{w} * {seconds(w)} >= {bad} and {enough_users}) "
              f"or (chatwizard:http_errors:ratio_rate5m > {errors} and ({enough_users} "
              f'or chatwizard:http_errors:rate5m * 300 >= {c["min_failed_requests"]}))',
              fast["for"], "critical", "More than 5 % of API requests fail with 5xx",
              f"More than 5 % of user requests answered 5xx over the last {w} (at least {bad} of them) or the "
              f'last 5 minutes (with {min_rate} req/s or at least {c["min_failed_requests"]} failures).', "errors"),
        alert("ChatWizardDatabaseConnectionFailures",
              f'(min(chatwizard_db_up{{node="primary"}}) == 0) or (min(pg_up) == 0) '
              f'or (sum(increase(chatwizard_db_connection_failures_total{{node="primary"}}[1m])) >= {c["database"]["min_failures_per_min"]})',
              "15s", "critical", "The app cannot reach the Postgres primary",
              "The primary is down (the app's health check or the exporter says so), or connections and pool "
              f'acquisitions keep failing (at least {c["database"]["min_failures_per_min"]} in a minute). Writes fail '
              "with 503; reads may still be served by the replica.", "database"),
        alert("ChatWizardCacheHitRateCritical",
              f"(chatwizard:chat_cache:hit_ratio_{w} < {hits} "
              f'and chatwizard:chat_cache_lookups:rate{w} * {seconds(w)} >= {fast["min_cache_lookups"]} '
              f'and chatwizard:chat_cache_lookups:rate5m > {c["min_cache_lookup_rate"]}) '
              f'or (chatwizard:chat_cache:hit_ratio_5m < {hits} and chatwizard:chat_cache_lookups:rate5m > {c["min_cache_lookup_rate"]})',
              fast["for"], "critical", "Chat cache hit rate below 30 %",
              "Fewer than 30 % of chat questions are answered from the cache: LLM cost and latency are up.",
              "cache"),
        alert("ChatWizardMemoryHigh", f'chatwizard:memory:usage_ratio > {c["memory"]["critical_ratio"]}',
              "15s", "critical", "App memory above 85 % of its limit",
              "Resident memory of the app (master + workers) is above 85 % of its limit; "
              "the OOM killer is close.", "memory"),
        alert("ChatWizardTargetDown", f'up{{job="{c["app_job"]}"}} == 0', "30s", "critical",
              "Prometheus cannot scrape the app",
              "The app's metrics endpoint on {{ $labels.instance }} does not answer: the app is down or unreachable."),
        alert("ChatWizardProbeFailing", 'probe_success{job="blackbox"} == 0', "30s", "critical",
              "Outside-in probe failing",
              "The blackbox probe of {{ $labels.instance }} gets no 200 (public health or authenticated endpoint); "
              "users are likely affected."),
        *(b for b in burn_alerts() if b["labels"]["severity"] == "critical"),
    ]


def warning_alerts() -> list[dict[str, Any]]:
    c, min_rate, job = CONFIG, CONFIG["min_request_rate"], CONFIG["app_job"]
    traffic, sec, cost = c["traffic"], c["security"], c["cost"]
    now, last_week = "chatwizard:http_requests:rate30m", "chatwizard:http_requests:rate30m offset 1w"
    return [
        alert("ChatWizardLatencyHigh",
              f'chatwizard:http_request_duration_seconds:p95_5m > {c["latency"]["warning_p95_s"]} '
              f"and chatwizard:http_requests:rate5m > {min_rate}",
              c["latency"]["warning_for"], "warning", "API p95 latency above 3 s for 15 minutes",
              "The 95th percentile of API latency has stayed above the 3 s target.", "latency"),
        *(b for b in burn_alerts() if b["labels"]["severity"] != "critical"),
        alert("ChatWizardCacheHitRateDegraded",
              f'chatwizard:chat_cache:hit_ratio_30m < {c["cache"]["warning_hit_ratio"]} '
              f'and chatwizard:chat_cache_lookups:rate30m > {c["min_cache_lookup_rate"]}',
              "15m", "warning", "Chat cache hit rate under the 70 % target",
              "The cache answers fewer questions than the 70 % target over 30 minutes.", "cache"),
        alert("ChatWizardLLMCostOverBudget",
              f'chatwizard:llm_cost_usd:spent_24h > {cost["warning_factor"] * cost["daily_budget_usd"]:.2f}',
              "5m", "warning", "LLM spend above 150 % of the daily budget",
              f'LLM spend over the last 24 hours exceeds 150 % of the daily budget (${cost["daily_budget_usd"]:.2f}). '
              "Spend is bursty (a day's budget may go in a few busy hours), so the alert reads what was spent, "
              "not an hour's rate projected over a day."),
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
        "recording.yml": {"groups": [{"name": "chatwizard.recording", "interval": FAST_INTERVAL,
                                      "rules": recording_rules()}]},
        LONG_RULES: {"groups": [
            {"name": "chatwizard.recording_long", "interval": LONG_INTERVAL, "rules": long_recording_rules()},
            {"name": "chatwizard.slo_period", "interval": PERIOD_INTERVAL, "rules": period_rules()}]},
        "critical.yml": {"groups": [{"name": "chatwizard.critical", "interval": FAST_INTERVAL,
                                     "rules": critical_alerts()}]},
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
