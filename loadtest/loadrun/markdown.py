"""The Markdown version of a run's report (prose lines are long by nature)."""

from __future__ import annotations

from typing import Any

SOAK_BOUND_MB_PER_HOUR = 25.0  # memory "stable": under 1.2 % of the 2 GB budget per hour


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def to_markdown(name: str, r: dict[str, Any]) -> str:
    m, c = r["measured"], r["config"]
    lines = [
        f"# Load test report: {name}",
        "",
        f"Command: `{r['command']}` (about {r['elapsed_min']} minutes including set-up).",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, {r['machine']['memory_gb']} GB, "
        f"{r['machine']['os']}; {r['machine']['k6']}; k6 and every server on this one machine.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    shown = {
        "chat p95 < 3 s": ms(m["chat_p95_ms"]),
        "overall p95 < 3 s": ms(m["overall_p95_ms"]),
        "failures < 1 %": pct(m["failure_rate"]),
        "app RSS < 2 GB at peak": f"{m['peak_rss_mb']:,.0f} MB",
        "cache hit rate > 70 %": pct(m["cache_hit_rate"]),
        "pool efficiency > 95 %": pct(m["pool_efficiency"]),
    }
    if r["ladder"]:
        shown["cached chat >= 50 % of bare throughput"] = pct(r["ladder"]["cached_vs_bare_throughput"])
    for target, outcome in r["targets"].items():
        value = shown.get(target, f"{m['rss_trend_mb_per_hour']} MB/h")
        lines.append(f"| {target} | {value} | {'yes' if outcome['met'] else '**no**'} |")
    lines += [
        "",
        "## What ran",
        "",
        f"- {c['users']:,} k6 virtual users (`{c['scenario']}` scenario: ramp {c['ramp']}, hold {c['hold']}), each a "
        f"learner with its own pro-tier key, journey and pauses from `loadtest/k6/lib/learner.js` "
        f"(pauses x{c['think_scale']}); {m['requests']:,} requests, {m['requests_per_s']:.0f} per second on average.",
        f"- Questions: {pct(c['question_mix']['popular_exact_repeats'])} popular (Zipf s = 1.1 over 20 questions, "
        f"so exact repeats), {pct(c['question_mix']['paraphrases'])} paraphrases of them, "
        f"{pct(c['question_mix']['unique'])} unique; 85 % JSON, 10 % SSE, 5 % WebSocket.",
        f"- Catalogue: {c['videos']:,} generated videos (YouTube `videos.list` format).",
        "- Fake LLM (`loadtest/fakellm`) at its defaults: "
        + ", ".join(f"{k} {v}" for k, v in c["fake_llm"].items())
        + ".",
        "- App: gunicorn, 2 uvicorn workers, pools of 5-20 connections per node per worker, PgBouncer not used "
        "(see loadtest/README.md), Postgres primary + streaming replica, Redis.",
        "",
        "## Chat latency",
        "",
        f"- Plain JSON chat, complete answer: p95 {ms(m['chat_p95_ms'])}.",
        f"- SSE chat, complete answer: p95 {ms(m['chat_stream_complete_p95_ms'])}; WebSocket time to first token "
        f"(client side): p95 {ms(m['chat_ws_first_token_p95_ms'])}; app-side time to first token p95 by mode: "
        f"{m['server_first_token_p95_ms']}.",
        "",
        "Cache hit rate = chats answered from the exact or semantic cache / all chats. Pool efficiency = pool "
        "acquisitions served in at most 1 ms / all acquisitions (docs/observability.md). Both are computed from "
        "the app's counters between the first and last sample of the run.",
        "",
    ]
    if r["ladder"]:
        lad = r["ladder"]
        lines += [
            "## Ratio ladder (same run, 40 concurrent clients, no pauses)",
            "",
            "| step | requests/s | median | p95 |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {step} | {v['requests_per_s']:,.0f} | {ms(v['median_ms'])} | {ms(v['p95_ms'])} |"
            for step, v in lad["steps"].items()
        ]
        lines += [
            "",
            f"Cached chat throughput is {pct(lad['cached_vs_bare_throughput'])} of the bare endpoint's. "
            f"On a miss the fake LLM was fixed at {lad['stand_in_miss_ms']:,.0f} ms (embedding 40 ms, time to "
            f"first token 400 ms, 160 tokens at 100 tokens/s in chunks of 5, each sent when its first token "
            f"is due); the app's own overhead on a miss (its p95 minus that) is "
            f"{ms(lad['miss_overhead_p95_ms'])}, and {ms(lad['miss_overhead_median_ms'])} at the median. "
            f"The miss clients start spread over 2 s, as independent learners arrive.",
            "",
        ]
    if m["rss_trend_mb_per_hour"] is not None:
        lines += [
            "## Memory over time",
            "",
            f"RSS trend over minutes {m['rss_trend_window_min'][0]:g}-{m['rss_trend_window_min'][1]:g} of the run "
            f"(the last 30 at full load; least squares): {m['rss_trend_mb_per_hour']} MB per hour; "
            f"bound {SOAK_BOUND_MB_PER_HOUR:g} MB per hour. RSS went from {m['rss_series_first_mb']:,.0f} MB "
            f"to {m['rss_series_last_mb']:,.0f} MB (peak {m['peak_rss_mb']:,.0f} MB).",
            "",
        ]
    lines += ["## Charts", ""] + [f"![{label}]({file})" for label, file in r["charts"].items()] + [""]
    return "\n".join(lines)
