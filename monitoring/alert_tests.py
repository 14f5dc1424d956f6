"""promtool unit tests for every alert, on both sides of its threshold and of its `for`.

Each case below is written by hand: the series that should page, the series just on the other
side of the threshold (and, for ratios, too little traffic to trust), and when the alert must still
be pending and when it must fire. `python -m monitoring.alert_tests` renders them to
monitoring/tests/*.yml with the expected labels and annotations taken from the rules, and
`promtool test rules monitoring/tests/*.yml` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.generate import LONG_RULES, RULES_DIR, render, rule_files

TESTS_DIR = Path(__file__).parent / "tests"
APP = 'job="chatwizard"'
Series = dict[str, str]


@dataclass
class Case:
    alert: str
    fire: Series
    quiet: list[Series]          # other side of the threshold, and too little traffic for ratios
    pending_at: str | None       # condition true, `for` not yet elapsed: nothing fires
    fire_at: str
    labels: dict[str, str] = field(default_factory=dict)  # series labels the alert keeps
    interval: str = "15s"        # 1m for cases that need hours or a week of history


def buckets(route: str, per_bucket: dict[str, str]) -> Series:
    """Latency histogram series: per_bucket maps `le` to the cumulative counter expression."""
    return {f'chatwizard_http_request_duration_seconds_bucket{{{APP},route="{route}",method="POST",le="{le}"}}': v
            for le, v in per_bucket.items()}


def requests(status: str, values: str) -> Series:
    return {f'chatwizard_http_requests_total{{{APP},route="/v1/chat",method="POST",status="{status}"}}': values}


def probes(values: str) -> Series:
    """Kubelet and blackbox probes, counted by the app like any request."""
    return {f'chatwizard_http_requests_total{{{APP},route="{route}",method="GET",status="200"}}': values
            for route in ("/healthz", "/readyz")}


def cache(exact_hit: str, exact_miss: str, semantic_hit: str) -> Series:
    name = "chatwizard_cache_requests_total"
    return {f'{name}{{{APP},cache="exact",result="hit"}}': exact_hit,
            f'{name}{{{APP},cache="exact",result="miss"}}': exact_miss,
            f'{name}{{{APP},cache="semantic",result="hit"}}': semantic_hit}


def one(metric: str, values: str, labels: str = APP) -> Series:
    return {f"{metric}{{{labels}}}": values}


SLOW = {"3": "0x40", "5": "0x40", "10": "0+60x40", "+Inf": "0+60x40"}       # p95 ≈ 9.75 s
JUST_UNDER_5 = {"3": "0x40", "5": "0+60x40", "10": "0+60x40", "+Inf": "0+60x40"}  # p95 ≈ 4.9 s
OVER_3 = {"2": "0x100", "3": "0x100", "5": "0+60x100", "+Inf": "0+60x100"}     # p95 ≈ 4.9 s
JUST_UNDER_3 = {"2": "0x100", "3": "0+60x100", "5": "0+60x100", "+Inf": "0+60x100"}  # p95 ≈ 2.95 s
# 1 req/s, all fast but for two slow requests at 2.5 min: p95 over 30 s > 5 s, but two are not a pattern.
TWO_SLOW = {"3": "0+15x40", "5": "0+15x40", "10": "0+15x9 152+15x30", "+Inf": "0+15x9 152+15x30"}
NO_FAILURES = {**one("chatwizard_db_up", "1x40", f'{APP},node="primary"'), **one("pg_up", "1x40", 'job="postgres"')}

CASES = [
    Case("ChatWizardHighLatency", {**buckets("/v1/chat", SLOW), **requests("200", "0+60x40")},
         [{**buckets("/v1/chat", JUST_UNDER_5), **requests("200", "0+60x40")},
          {**buckets("/v1/chat", SLOW), **requests("200", "0+2x40")},
          {**buckets("/v1/chat", TWO_SLOW), **requests("200", "0+15x40")}],
         "15s", "1m"),
    Case("ChatWizardHighErrorRate", {**requests("500", "0+6x40"), **requests("200", "0+54x40")},
         [{**requests("500", "0+2x40"), **requests("200", "0+58x40")}, requests("500", "0 1 2x38")],
         "15s", "1m"),
    # Low traffic: every user chat fails, 2 a minute, while probes bring 0.8 req/s of 200s. Probes are
    # not users: 100 % of user requests fail. Quiet: three failures, then none.
    Case("ChatWizardHighErrorRate", {**requests("500", "0+0.5x40"), **probes("0+6x40")},
         [{**requests("500", "0 1 2 3x37"), **probes("0+6x40")}], "2m", "5m"),
    Case("ChatWizardDatabaseConnectionFailures", one("chatwizard_db_up", "0x40", f'{APP},node="primary"'),
         [{**NO_FAILURES, **one("chatwizard_db_connection_failures_total", "0x40", f'{APP},node="primary"')},
          # One pool-acquire timeout under load is not an outage.
          {**NO_FAILURES, **one("chatwizard_db_connection_failures_total", "0x4 1x35", f'{APP},node="primary"')}],
         "0s", "1m"),
    # The health check still passes but connections keep failing (2 every 15 s).
    Case("ChatWizardDatabaseConnectionFailures",
         {**NO_FAILURES, **one("chatwizard_db_connection_failures_total", "0+2x40", f'{APP},node="primary"')},
         [{**NO_FAILURES, **one("chatwizard_db_connection_failures_total", "0 1 2 3x37", f'{APP},node="primary"')}],
         "30s", "2m"),
    Case("ChatWizardCacheHitRateCritical", cache("0+3x40", "0+27x40", "0+3x40"),
         [cache("0+6x40", "0+24x40", "0+4x40"), cache("0x40", "0+1x40", "0x40")], "15s", "1m"),
    Case("ChatWizardMemoryHigh", {**one("chatwizard_memory_rss_bytes", "1800x40"),
                                  **one("chatwizard_memory_limit_bytes", "2000x40")},
         [{**one("chatwizard_memory_rss_bytes", "1650x40"), **one("chatwizard_memory_limit_bytes", "2000x40")}],
         "0s", "1m"),
    Case("ChatWizardTargetDown", one("up", "0x40", f'{APP},instance="app:9000"'),
         [one("up", "1x40", f'{APP},instance="app:9000"')], "15s", "1m",
         {"job": "chatwizard", "instance": "app:9000"}),
    Case("ChatWizardProbeFailing", one("probe_success", "0x40", 'job="blackbox",instance="public-health"'),
         [one("probe_success", "1x40", 'job="blackbox",instance="public-health"')], "15s", "1m",
         {"job": "blackbox", "instance": "public-health"}),
    # rate over 1 h on a few minutes of data reads low: 4 req/s passes the 0.2 req/s guard after 3 min.
    Case("ChatWizardErrorBudgetBurnFast", {**requests("500", "0+12x40"), **requests("200", "0+48x40")},
         [{**requests("500", "0+4x40"), **requests("200", "0+56x40")}], "4m", "6m"),
    Case("ChatWizardLatencyHigh", {**buckets("/v1/chat", OVER_3), **requests("200", "0+60x100")},
         [{**buckets("/v1/chat", JUST_UNDER_3), **requests("200", "0+60x100")},
          {**buckets("/v1/chat", OVER_3), **requests("200", "0+2x100")}], "10m", "20m"),
    Case("ChatWizardErrorBudgetBurnSlow", {**requests("500", "0+12x400"), **requests("200", "0+228x400")},
         [{**requests("500", "0+4x400"), **requests("200", "0+236x400")}], "30m", "50m", interval="1m"),
    # 4 req/s, 2.1 % errors (burn 4.2 > 3; quiet: 1 %); the 1 d rate passes the traffic guard after ~72 min.
    Case("ChatWizardErrorBudgetBurnDaily", {**requests("500", "0+5x600"), **requests("200", "0+235x600")},
         [{**requests("500", "0+2.4x600"), **requests("200", "0+237.6x600")}], "100m", "150m", interval="1m"),
    # 0.8 % errors (burn 1.6 > 1; quiet: 0.4 %); the 3 d rate passes the guard after ~216 min, then 3 h.
    Case("ChatWizardErrorBudgetBurnSteady", {**requests("500", "0+1.92x600"), **requests("200", "0+238.08x600")},
         [{**requests("500", "0+0.96x600"), **requests("200", "0+239.04x600")}], "300m", "450m", interval="1m"),
    Case("ChatWizardCacheHitRateDegraded", cache("0+12x100", "0+18x100", "0+6x100"),
         [cache("0+15x100", "0+15x100", "0+7x100"), cache("0x100", "0+1x100", "0x100")], "10m", "20m"),
    # $4.32/day: the last 24 hours pass $0.75 after ~250 min. Quiet: a day that spends exactly its $0.50
    # budget in eight busy hours (an hour's rate projected over a day would say $1.50).
    Case("ChatWizardLLMCostOverBudget", one("chatwizard_llm_cost_usd_total", "0+0.003x600", f'{APP},model="gpt-4o-mini"'),
         [one("chatwizard_llm_cost_usd_total", "0+0.00104166x480 0.5x120", f'{APP},model="gpt-4o-mini"')],
         "252m", "270m", interval="1m"),
    Case("ChatWizardReplicaLagHigh", one("chatwizard_db_replica_lag_seconds", "10x40"),
         [one("chatwizard_db_replica_lag_seconds", "4x40")], "30s", "2m"),
    Case("ChatWizardReplicaDown", one("chatwizard_db_up", "0x40", f'{APP},node="replica"'),
         [one("chatwizard_db_up", "1x40", f'{APP},node="replica"')], "30s", "2m"),
    Case("ChatWizardRedisDown", one("chatwizard_redis_fallback_active", "1x40"),
         [{**one("chatwizard_redis_fallback_active", "0x40"), **one("redis_up", "1x40", 'job="redis"')}],
         "30s", "2m"),
    Case("ChatWizardLLMDegraded",
         {**one("chatwizard_llm_errors_total", "0+3x100", f'{APP},provider="openai",operation="chat",kind="server"'),
          **one("chatwizard_llm_requests_total", "0+10x100", f'{APP},provider="openai",operation="chat",outcome="ok"')},
         [{**one("chatwizard_llm_errors_total", "0+1x100", f'{APP},provider="openai",operation="chat",kind="server"'),
           **one("chatwizard_llm_requests_total", "0+10x100", f'{APP},provider="openai",operation="chat",outcome="ok"'),
           **one("chatwizard_llm_circuit_open", "0x100", f'{APP},provider="openai"')}], "3m", "8m"),
    Case("ChatWizardAuthFailuresSpike", one("chatwizard_auth_failures_total", "0+30x100", f'{APP},reason="unknown"'),
         [one("chatwizard_auth_failures_total", "0+12x100", f'{APP},reason="unknown"')], "3m", "10m"),
    Case("ChatWizardAuthzDenialsSpike", one("chatwizard_authz_denials_total", "0+15x100", f'{APP},route="/v1/admin/users"'),
         [one("chatwizard_authz_denials_total", "0+6x100", f'{APP},route="/v1/admin/users"')], "3m", "10m"),
    Case("ChatWizardRateLimitingSpike", one("chatwizard_rate_limited_total", "0+45x100", f'{APP},scope="key"'),
         [one("chatwizard_rate_limited_total", "0+24x100", f'{APP},scope="key"')], "3m", "10m"),
    # A week of history at 1 req/s, then 3 req/s (fires) or 1.5 req/s (does not).
    Case("ChatWizardUnusualTraffic", requests("200", "0+60x10080 604800+180x60"),
         [requests("200", "0+60x10080 604800+90x60")], "10100m", "10130m", interval="1m"),
]
ALWAYS_FIRING = ["Watchdog"]  # a dead man's switch has no quiet side


def alerts_by_name() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for document in rule_files().values() for group in document["groups"]
            for rule in group["rules"] if "alert" in rule}


def expected(rule: dict[str, Any], labels: dict[str, str]) -> list[dict[str, Any]]:
    annotations = {k: v.replace("{{ $labels.instance }}", labels.get("instance", ""))
                   for k, v in rule["annotations"].items()}
    return [{"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}]


def series(spec: Series) -> list[dict[str, str]]:
    return [{"series": name, "values": values} for name, values in spec.items()]


def scenario(interval: str, spec: Series, checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"interval": interval, "input_series": series(spec), "alert_rule_test": checks}


def case_tests(case: Case, rule: dict[str, Any], interval: str) -> list[dict[str, Any]]:
    checks = [{"eval_time": case.fire_at, "alertname": case.alert, "exp_alerts": expected(rule, case.labels)}]
    if case.pending_at is not None:
        checks.insert(0, {"eval_time": case.pending_at, "alertname": case.alert, "exp_alerts": []})
    quiet = [scenario(interval, spec, [{"eval_time": case.fire_at, "alertname": case.alert, "exp_alerts": []}])
             for spec in case.quiet]
    return [scenario(interval, case.fire, checks), *quiet]


def suite(case: Case, rule: dict[str, Any]) -> str:
    """alerts.yml: 15 s steps; slo.yml: alerts on day-long windows (the only runs that load them);
    week.yml: a week of 1 m steps, where day-long windows would cost minutes."""
    long_series = {r["record"] for group in rule_files()[LONG_RULES]["groups"] for r in group["rules"]}
    if any(name in rule["expr"] for name in long_series):
        return "slo.yml"
    return "alerts.yml" if case.interval == "15s" else "week.yml"


def test_files() -> dict[str, dict[str, Any]]:
    rules = alerts_by_name()
    every_file = [f"../rules/{name}" for name in rule_files()]
    watchdog = [scenario("15s", {}, [{"eval_time": "1m", "alertname": name,
                                      "exp_alerts": expected(rules[name], {})}]) for name in ALWAYS_FIRING]
    files: dict[str, dict[str, Any]] = {}
    for name in ("alerts.yml", "week.yml", "slo.yml"):
        cases = [c for c in CASES if suite(c, rules[c.alert]) == name]
        interval = cases[0].interval
        files[name] = {
            "rule_files": every_file if name == "slo.yml" else [f for f in every_file if not f.endswith(LONG_RULES)],
            "evaluation_interval": interval,
            "tests": [t for c in cases for t in case_tests(c, rules[c.alert], interval)]
            + (watchdog if name == "alerts.yml" else [])}
    return files


def rendered() -> dict[str, str]:
    return {name: render(document).replace("monitoring.generate` from monitoring/config.yaml",
                                           "monitoring.alert_tests` from its hand-written cases")
            for name, document in test_files().items()}


def main() -> None:
    TESTS_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (TESTS_DIR / name).write_text(text)
    print(f"wrote {len(test_files())} promtool test files to {TESTS_DIR}; rules in {RULES_DIR}")


if __name__ == "__main__":
    main()
