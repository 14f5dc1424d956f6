"""A load-test run in one command (`make loadtest USERS=10000`, `make soak`):

starts the estate in its performance configuration (100,000-video catalogue, fake LLM with its
realistic defaults), creates one pro key per virtual user, runs the ratio ladder, then the k6
scenario while sampling the app's metrics, and writes loadtest/reports/<date>-<scenario>-<users>.*
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from chatwizard.core.crypto import FieldCipher
from chatwizard.core.settings import Settings
from fakellm.config import FakeLLMConfig
from loadrun import k6, report
from loadrun.estate import PerfEstate, create_learners, perf_estate
from loadrun.markdown import SOAK_BOUND_MB_PER_HOUR, to_markdown
from loadrun.sampler import Sampler, parse

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "loadtest" / "reports"
LADDER_LLM = {
    "latency_mode": "fixed",
    "ttft_median_s": 0.4,
    "tokens_per_second": 100.0,
    "embedding_median_s": 0.04,
}
TARGETS_MS = 3000
SOAK_TREND_WINDOW_S = 30 * 60


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadrun", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["load", "soak", "spike"], default="load")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--ramp", default="5m", help="k6 ramp-up to --users")
    parser.add_argument("--hold", default="10m", help="time at --users (soak: at least 30m)")
    parser.add_argument("--think-scale", type=float, default=1.0, help="multiplies the learner's pauses")
    parser.add_argument("--videos", type=int, default=100_000, help="catalogue size (generated once)")
    parser.add_argument("--state", type=Path, default=ROOT / ".estate-perf")
    parser.add_argument("--no-ladder", action="store_true")
    parser.add_argument("--ladder-only", action="store_true",
                        help="run only the ratio ladder and print its figures (no report)")
    parser.add_argument("--name", help="report name (default: <date>-<scenario>-<users>)")
    return parser.parse_args()


def warm_up(estate: PerfEstate, keys: list[str]) -> None:
    """Ask each popular question as enough learners for the semantic cache to share its answer, so the
    run starts like a service that has been up a while."""
    topics = json.loads((ROOT / "loadtest" / "k6" / "lib" / "topics.json").read_text())
    for key in keys[:Settings().semantic_cache_min_askers]:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=estate.base_url, trust_env=False, timeout=60, headers=headers) as client:
            for topic in topics:
                client.post("/v1/chat", json={"question": topic["question"]}).raise_for_status()


def scrape(estate: PerfEstate) -> str:
    return httpx.get(estate.metrics_url, trust_env=False, timeout=10).text


def server_ttft_p95_ms(text: str) -> dict[str, float | None]:
    """The app's own time to first token by mode (SSE/WebSocket), from its histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    by_mode: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "chatwizard_chat_time_to_first_token_seconds_bucket":
                by_mode.setdefault(s.labels["mode"], {})[float(s.labels["le"])] = s.value
    return {
        mode: round(q * 1000, 1) if (q := report.quantile(b, 0.95)) is not None else None
        for mode, b in by_mode.items()
    }


def run_ladder(estate: PerfEstate, out: Path, keys_file: Path, console: Path) -> dict[str, Any]:
    estate.configure_llm(**LADDER_LLM)
    try:
        summary = k6.run("ladder", out, {"BASE_URL": estate.base_url, "KEYS_FILE": str(keys_file)}, console)
    finally:
        estate.configure_llm(latency_mode="lognormal")
    metrics = summary["metrics"]
    phase_s = 20
    steps = {}
    for phase in ("bare", "cached", "semantic", "miss"):
        duration = metrics[f"http_req_duration{{phase:{phase}}}"]
        steps[phase] = {
            "requests_per_s": round(metrics[f"http_reqs{{phase:{phase}}}"]["count"] / phase_s, 1),
            "p95_ms": round(duration["p(95)"], 1),
            "median_ms": round(duration["med"], 1),
        }
    config = FakeLLMConfig(**{k: v for k, v in LADDER_LLM.items()})
    answer_tokens = int(estate.env.get("CHATWIZARD_LLM_MAX_TOKENS", "160"))
    # Chunks go out when their first token is due, so the last one leaves a chunk before the end.
    last_chunk = (answer_tokens - 1) // config.stream_chunk_tokens * config.stream_chunk_tokens
    stand_in_ms = 1000 * (
        config.embedding_median_s + config.ttft_median_s + last_chunk / config.tokens_per_second
    )
    return {
        "steps": steps,
        "stand_in_miss_ms": round(stand_in_ms, 1),
        "miss_overhead_p95_ms": round(steps["miss"]["p95_ms"] - stand_in_ms, 1),
        "miss_overhead_median_ms": round(steps["miss"]["median_ms"] - stand_in_ms, 1),
        "cached_vs_bare_throughput": round(
            steps["cached"]["requests_per_s"] / steps["bare"]["requests_per_s"], 3
        ),
        "checks_passed": summary["metrics"].get("checks", {}).get("value"),
    }


def main() -> None:
    args = options()
    name = args.name or f"{datetime.now(UTC):%Y-%m-%d}-{args.scenario}-{args.users}"
    out = REPORTS
    raw = out / "raw" / name
    raw.mkdir(parents=True, exist_ok=True)
    console = raw / "k6-console.log"
    command = ".venv/bin/python -m loadrun " + shlex.join(sys.argv[1:])  # exactly this run
    file_limit = k6.raise_file_limit()
    started = time.time()
    with perf_estate(args.state, args.videos) as estate:
        cipher = FieldCipher(estate.env["CHATWIZARD_FIELD_KEYS"])
        keys = create_learners(estate.primary_dsn, args.users, f"{int(started)}", cipher)
        keys_file = raw / "keys.json"
        keys_file.write_text(json.dumps(keys))
        warm_up(estate, keys)
        ladder = None if args.no_ladder else run_ladder(estate, raw, keys_file, console)
        if args.ladder_only:
            keys_file.unlink()
            print(json.dumps(ladder, indent=2))
            return
        sampler = Sampler(estate.metrics_url)
        sampler.start()
        summary = k6.run(
            args.scenario,
            raw,
            {
                "BASE_URL": estate.base_url,
                "KEYS_FILE": str(keys_file),
                "USERS": str(args.users),
                "RAMP": args.ramp,
                "HOLD": args.hold,
                "DURATION": args.hold,
                "THINK_SCALE": str(args.think_scale),
            },
            console,
        )
        samples = sampler.stop()
        final = scrape(estate)
        llm = estate.llm_stats()
    keys_file.unlink()  # keys of throwaway users, but keys all the same
    result = summarise(args, command, summary, samples, final, ladder, llm, file_limit, time.time() - started)
    result["charts"] = report.charts(result.pop("_rows"), out, name)
    report.write(out, name, result, to_markdown(name, result))
    print(f"report: {out / (name + '.md')}")
    sys.exit(0 if all(t["met"] for t in result["targets"].values()) else 1)


def k6_metric(summary: dict, name: str, stat: str = "p(95)") -> float | None:
    metric = summary["metrics"].get(name)
    return None if metric is None else metric.get(stat)


def summarise(
    args: argparse.Namespace,
    command: str,
    summary: dict,
    samples: list,
    final: str,
    ladder: dict | None,
    llm: dict,
    file_limit: int,
    elapsed_s: float,
) -> dict[str, Any]:
    rows = report.series(samples)
    first, last = samples[0], samples[-1]
    values, _ = parse(final)
    failed = summary["metrics"]["http_req_failed"]
    failure_rate = failed.get("value", failed.get("rate"))
    peak_rss_mb = max((r["rss_mb"] for r in rows), default=0)
    hit_rate = report.cache_hit_rate(first, last)
    efficiency = report.pool_efficiency(first, last)
    # The soak's trend covers the last SOAK_TREND_WINDOW_S at full load: the minutes before fill the
    # bounded structures (semantic index, near cache, pools' statement caches) once.
    full_load_end = report.seconds(args.ramp) + report.seconds(args.hold)
    trend_window = (max(report.seconds(args.ramp), full_load_end - SOAK_TREND_WINDOW_S), full_load_end)
    trend = report.rss_trend_mb_per_hour(rows, *trend_window) if args.scenario == "soak" else None
    measured = {
        "overall_p95_ms": k6_metric(summary, "http_req_duration"),
        "chat_p95_ms": k6_metric(summary, "chat_duration"),
        "chat_stream_complete_p95_ms": k6_metric(summary, "chat_stream_duration"),
        "chat_ws_first_token_p95_ms": k6_metric(summary, "chat_time_to_first_token"),
        "server_first_token_p95_ms": server_ttft_p95_ms(final),
        "failure_rate": failure_rate,
        "checks_rate": summary["metrics"]["checks"].get("value"),
        "requests": summary["metrics"]["http_reqs"]["count"],
        "requests_per_s": summary["metrics"]["http_reqs"]["rate"],
        "peak_vus": summary["metrics"].get("vus_max", {}).get("value"),
        "peak_rss_mb": peak_rss_mb,
        "cache_hit_rate": hit_rate,
        "pool_efficiency": efficiency,
        "rss_trend_mb_per_hour": trend,
        "rss_trend_window_min": [round(t / 60, 1) for t in trend_window] if trend is not None else None,
        "rss_series_first_mb": rows[0]["rss_mb"] if rows else None,
        "rss_series_last_mb": rows[-1]["rss_mb"] if rows else None,
        "llm_calls": llm.get("requests"),
        "app_5xx": values.get("requests_5xx", 0),
    }
    targets = {
        "chat p95 < 3 s": {"met": (measured["chat_p95_ms"] or 1e9) < TARGETS_MS},
        "overall p95 < 3 s": {"met": (measured["overall_p95_ms"] or 1e9) < TARGETS_MS},
        "failures < 1 %": {"met": failure_rate is not None and failure_rate < 0.01},
        "app RSS < 2 GB at peak": {"met": 0 < peak_rss_mb < 2048},
        "cache hit rate > 70 %": {"met": hit_rate is not None and hit_rate > 0.70},
        "pool efficiency > 95 %": {"met": efficiency is not None and efficiency > 0.95},
    }
    if ladder:
        targets["cached chat >= 50 % of bare throughput"] = {
            "met": ladder["cached_vs_bare_throughput"] >= 0.5
        }
    if args.scenario == "soak":
        targets[f"RSS trend < {SOAK_BOUND_MB_PER_HOUR:g} MB/h"] = {
            "met": trend is not None and trend < SOAK_BOUND_MB_PER_HOUR
        }
    return {
        "command": command,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_min": round(elapsed_s / 60, 1),
        "machine": {**report.machine(), "open_files_limit": file_limit},
        "config": {
            "scenario": args.scenario,
            "users": args.users,
            "ramp": args.ramp,
            "hold": args.hold,
            "think_scale": args.think_scale,
            "videos": args.videos,
            "question_mix": {"popular_exact_repeats": 0.70, "paraphrases": 0.15, "unique": 0.15},
            "fake_llm": {
                k: v
                for k, v in FakeLLMConfig().__dict__.items()
                if k
                in (
                    "latency_mode",
                    "ttft_median_s",
                    "ttft_p95_s",
                    "tokens_per_second",
                    "default_answer_tokens",
                    "embedding_median_s",
                    "embedding_p95_s",
                )
            },
        },
        "measured": measured,
        "targets": targets,
        "ladder": ladder,
        "series": rows,
        "_rows": rows,
    }


if __name__ == "__main__":
    main()
