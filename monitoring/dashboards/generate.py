"""Grafana dashboards as code: `python -m monitoring.dashboards.generate` writes monitoring/dashboards/*.json.

Panels are defined here with their PromQL and a description of what they mean (Grafana shows it on
hover; docs/observability.md lists them). A test fails when the committed JSON differs from this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder

OUT = Path(__file__).parent
DOCS = OUT.parents[1] / "docs" / "dashboards.md"
APP = 'job="chatwizard"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class P:
    title: str
    exprs: tuple[str, ...]
    unit: str
    description: str
    legend: str = ""
    stat: bool = False


def q(expr: str, legend: str = "") -> Dataquery:
    query = Dataquery().expr(expr)
    return query.legend_format(legend) if legend else query


def panel(spec: P) -> Timeseries | Stat:
    built = (Stat() if spec.stat else Timeseries()).title(spec.title).unit(spec.unit).description(spec.description)
    for expr in spec.exprs:
        built = built.with_target(q(expr, spec.legend))
    return built


DASHBOARDS: dict[str, tuple[str, dict[str, list[P]]]] = {
    "chatwizard-overview": ("Chat Wizard / Service overview", {
        "Traffic, errors, latency (RED)": [
            P("Requests per second by route", (f'sum by (route) (rate(chatwizard_http_requests_total{{{APP}}}[{RATE}]))',),
              "reqps", "Throughput per route template.", "{{route}}"),
            P("5xx ratio", ("chatwizard:http_errors:ratio_rate5m",), "percentunit",
              "Share of requests answered 5xx over 5 minutes; the critical alert fires above 5 %."),
            P("p95 latency", ("chatwizard:http_request_duration_seconds:p95_1m", "chatwizard:http_request_duration_seconds:p95_5m"),
              "s", "95th percentile over 1 and 5 minutes (streams excluded); target < 3 s, page > 5 s."),
            P("In-flight requests", (f"sum(chatwizard_http_requests_in_flight{{{APP}}})",), "short",
              "Requests being served right now across workers: the HPA's second signal."),
            P("p95 latency by route", (f'histogram_quantile(0.95, sum by (le, route) (rate(chatwizard_http_request_duration_seconds_bucket{{{APP}}}[{RATE}])))',),
              "s", "Which route is slow.", "{{route}}"),
            P("App memory and CPU", ("chatwizard:memory:usage_ratio", f"rate(chatwizard_cpu_seconds_total{{{APP}}}[{RATE}])"),
              "short", "Memory as a share of its limit (alert at 0.85) and CPU cores in use (master + workers)."),
        ]}),
    "chatwizard-chat-llm": ("Chat Wizard / Chat and LLM", {
        "Answers": [
            P("Cache hit rate (chat)", ("chatwizard:chat_cache:hit_ratio_5m",), "percentunit",
              "Questions answered from the exact or semantic cache; target > 70 %, page < 30 %."),
            P("Cache lookups by cache and result", (f'sum by (cache, result) (rate(chatwizard_cache_requests_total{{{APP}}}[{RATE}]))',),
              "ops", "Exact, semantic and search caches: hits, misses, errors.", "{{cache}} {{result}}"),
            P("Time to first token p95", (f'histogram_quantile(0.95, sum by (le, mode) (rate(chatwizard_chat_time_to_first_token_seconds_bucket{{{APP}}}[{RATE}])))',),
              "s", "How long until the learner sees the answer start, per channel.", "{{mode}}"),
            P("Complete answer p95 by cache", (f'histogram_quantile(0.95, sum by (le, cache) (rate(chatwizard_chat_duration_seconds_bucket{{{APP}}}[{RATE}])))',),
              "s", "Cached answers should take milliseconds; misses include the LLM.", "{{cache}}"),
        ],
        "LLM": [
            P("LLM latency p95", (f'histogram_quantile(0.95, sum by (le, operation) (rate(chatwizard_llm_request_duration_seconds_bucket{{{APP}}}[{RATE}])))',),
              "s", "Provider latency for chat and embeddings.", "{{operation}}"),
            P("LLM errors by kind", (f'sum by (kind) (rate(chatwizard_llm_errors_total{{{APP}}}[{RATE}]))',),
              "ops", "Timeouts, 429s, 5xx, connection errors, circuit-open rejections.", "{{kind}}"),
            P("Tokens per second", (f'sum by (model, direction) (rate(chatwizard_llm_tokens_total{{{APP}}}[{RATE}]))',),
              "short", "Input and output tokens by model.", "{{model}} {{direction}}"),
            P("LLM spend: last 24 h and the hour's pace", ("chatwizard:llm_cost_usd:spent_24h",
                                                          "chatwizard:llm_cost_usd:projected_daily"), "currencyUSD",
              "Spent over the last 24 h (warning above 150 % of the daily budget), and the last hour's rate "
              "times 24 h: bursty days run ahead of the budget for hours and still land on it.", stat=True),
        ]}),
    "chatwizard-datastores": ("Chat Wizard / Data stores", {
        "Postgres": [
            P("Pool connections", (f"sum by (node) (chatwizard_db_pool_connections{{{APP}}})", f"sum by (node) (chatwizard_db_pool_in_use{{{APP}}})"),
              "short", "Open and checked-out pool connections per node.", "{{node}}"),
            P("Pool waiting and acquire p95", (f"sum by (node) (chatwizard_db_pool_waiting{{{APP}}})",
                                               f'histogram_quantile(0.95, sum by (le, node) (rate(chatwizard_db_pool_acquire_seconds_bucket{{{APP}}}[{RATE}])))'),
              "short", "Callers waiting for a connection, and how long acquisition takes.", "{{node}}"),
            P("Pool efficiency", ("chatwizard:db_pool:efficiency_5m",), "percentunit",
              "Acquisitions served without waiting (<= 1 ms) / all acquisitions; target > 95 %.", stat=True),
            P("Reads by node", (f'sum by (node) (rate(chatwizard_db_reads_total{{{APP}}}[{RATE}]))',), "ops",
              "Which node served reads: replica normally, primary when the replica is down or lagging.", "{{node}}"),
            P("Replica lag", (f"max(chatwizard_db_replica_lag_seconds{{{APP}}})",), "s",
              "Replay lag seen by the app; beyond 5 s reads move to the primary."),
            P("Node up and connection failures", (f"min by (node) (chatwizard_db_up{{{APP}}})", "min(pg_up)",
                                                  f'sum by (node) (increase(chatwizard_db_connection_failures_total{{{APP}}}[5m]))'),
              "short", "1 = reachable. Failures page at once.", "{{node}}"),
            P("Group-commit batch size", (f'sum by (writer) (rate(chatwizard_db_write_batch_size_sum{{{APP}}}[{RATE}])) / sum by (writer) (rate(chatwizard_db_write_batch_size_count{{{APP}}}[{RATE}]))',),
              "short", "Chats stored per statement and commit; grows with load (1 when quiet).", "{{writer}}"),
        ],
        "Redis": [
            P("Redis errors and fallback", (f'sum by (operation) (rate(chatwizard_redis_errors_total{{{APP}}}[{RATE}]))',
                                            f"max(chatwizard_redis_fallback_active{{{APP}}})", "min(redis_up)"),
              "short", "Command failures; fallback 1 = serving without Redis.", "{{operation}}"),
            P("Near-cache hit ratio", (f'sum(rate(chatwizard_near_cache_requests_total{{{APP},result="hit"}}[{RATE}])) / sum(rate(chatwizard_near_cache_requests_total{{{APP}}}[{RATE}]))',),
              "percentunit", "Key lookups and popular answers served from process memory; 0 while Redis is down (by design)."),
            P("Rate-limit checks per round trip", (f'sum by (batcher) (rate(chatwizard_redis_batch_size_sum{{{APP}}}[{RATE}])) / sum by (batcher) (rate(chatwizard_redis_batch_size_count{{{APP}}}[{RATE}]))',),
              "short", "Concurrent checks share one pipeline; grows with load (1 when quiet).", "{{batcher}}"),
        ]}),
    "chatwizard-business": ("Chat Wizard / Business", {
        "Engagement": [
            P("Daily active users", (f'max(chatwizard_active_users{{{APP},window="1d"}})',), "short",
              "Distinct users today (HyperLogLog in Redis).", stat=True),
            P("Chats per minute by channel", (f'sum by (channel) (rate(chatwizard_chats_total{{{APP}}}[{RATE}])) * 60',),
              "short", "JSON, SSE and WebSocket chats.", "{{channel}}"),
            P("Session duration p50", (f'histogram_quantile(0.5, sum by (le) (rate(chatwizard_user_session_duration_seconds_bucket{{{APP}}}[1h])))',),
              "s", "Median length of a learner's session (ends after 30 min idle)."),
        ],
        "Learning outcomes": [
            P("Video clicks and completions per hour", (f"sum(rate(chatwizard_video_clicks_total{{{APP}}}[1h])) * 3600",
                                                        f"sum(rate(chatwizard_video_completions_total{{{APP}}}[1h])) * 3600"),
              "short", "Recommended videos clicked and watched to the end."),
            P("Watch time per hour", (f"sum(rate(chatwizard_watch_seconds_total{{{APP}}}[1h])) * 3600",), "s",
              "Seconds of video watched, from progress events."),
            P("Learning path completion (median)", (f'histogram_quantile(0.5, sum by (le) (rate(chatwizard_learning_path_progress_ratio_bucket{{{APP}}}[1d])))',),
              "percentunit", "Completion of paths at each completed video."),
            P("Calendar sessions scheduled per day", (f"sum(increase(chatwizard_calendar_sessions_scheduled_total{{{APP}}}[1d]))",),
              "short", "Learning sessions put in calendars."),
            P("LLM cost per active user today", (f"max(chatwizard_llm_cost_per_active_user_usd{{{APP}}})",), "currencyUSD",
              "Today's LLM spend divided by today's active users.", stat=True),
        ]}),
    "chatwizard-slo": ("Chat Wizard / SLO and error budget", {
        "Availability (99.5 %)": [
            P("Availability, last 30 days", ("chatwizard:slo_availability:ratio_30d",),
              "percentunit", "Share of user requests not answered 5xx over 30 days (probes left out); the SLO is "
              "99.5 %. From 5-minute increases kept 35 days (recording rules).", stat=True),
            P("Uptime (probe), last 30 days", ("chatwizard:probe_success:ratio_30d",), "percentunit",
              "Outside-in: share of blackbox probes that succeeded, per endpoint: the monthly SLA figure.",
              "{{instance}}", stat=True),
            P("Error budget remaining", ("chatwizard:slo_error_budget:remaining_30d",),
              "percentunit", "1 = untouched, 0 = spent for the 30-day window.", stat=True),
            P("Burn rate", tuple(f"chatwizard:http_errors:ratio_rate{w} / 0.005" for w in ("1h", "6h", "1d", "3d")),
              "short", "1 = spending exactly the budget; 14.4 over 1 h and 6 over 6 h page and warn, 3 over 1 d "
              "and 1 over 3 d open a ticket."),
        ]}),
}


def build(uid: str, title: str, rows: dict[str, list[P]]) -> Dashboard:
    board = (Dashboard(title).uid(uid).tags(["chatwizard", "generated"]).refresh("30s")
             .time("now-3h", "now").timezone("utc"))
    for row, panels in rows.items():
        board = board.with_row(Row(row))
        for spec in panels:
            board = board.with_panel(panel(spec))
    return board


def rendered() -> dict[str, str]:
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {f"{uid}.json": encoder.encode(build(uid, title, rows).build()) + "\n"
            for uid, (title, rows) in DASHBOARDS.items()}


def query_cell(exprs: tuple[str, ...]) -> str:
    escaped = (e.replace("|", "\\|") for e in exprs)
    return "<br>".join(f"`{e}`" for e in escaped)


def panel_docs() -> str:
    """docs/dashboards.md: where each dashboard is and what each panel means."""
    lines = ["# Dashboards", "",
             "Generated by `python -m monitoring.dashboards.generate` with the dashboards themselves. In Grafana",
             "they are in the folder **Chat Wizard**; each has a fixed uid, so its address is",
             "`<grafana>/d/<uid>` (production: the `dashboard_url` stack output). Locally, paste a panel's query",
             "into Prometheus (`http://127.0.0.1:9090/graph`).", ""]
    for uid, (title, rows) in DASHBOARDS.items():
        lines += [f"## {title}", "", f"uid `{uid}`", ""]
        for row, panels in rows.items():
            lines += [f"### {row}", "", "| panel | what it means | query |", "|---|---|---|"]
            lines += [f"| {p.title} | {p.description} | {query_cell(p.exprs)} |" for p in panels]
            lines.append("")
    return "\n".join(lines)


def expressions() -> list[str]:
    return [e for _, rows in DASHBOARDS.values() for panels in rows.values() for p in panels for e in p.exprs]


def main() -> None:
    for name, text in rendered().items():
        (OUT / name).write_text(text)
    DOCS.write_text(panel_docs())
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")


if __name__ == "__main__":
    main()
