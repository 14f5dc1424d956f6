"""Samples the app's own metrics endpoint during a run: memory, CPU, pool, caches, requests."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

GAUGES = ("chatwizard_memory_rss_bytes", "chatwizard_processes", "chatwizard_http_requests_in_flight")
COUNTERS = ("chatwizard_cpu_seconds_total",)


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    values: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)  # request latency histogram, all routes


def parse(text: str) -> tuple[dict[str, float], dict[float, float]]:
    values: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if s.name in GAUGES or s.name in COUNTERS:
                values[s.name] += s.value
            elif s.name == "chatwizard_http_request_duration_seconds_bucket":
                buckets[float(labels["le"])] += s.value
            elif s.name == "chatwizard_http_requests_total":
                values["requests"] += s.value
                if labels["status"].startswith("5"):
                    values["requests_5xx"] += s.value
            elif s.name == "chatwizard_cache_requests_total":
                values[f"cache_{labels['cache']}_{labels['result']}"] += s.value
            elif s.name == "chatwizard_db_pool_acquisitions_total":
                values[f"pool_acquisitions_{labels['waited']}"] += s.value
            elif s.name in (
                "chatwizard_db_pool_in_use",
                "chatwizard_db_pool_waiting",
                "chatwizard_db_pool_connections",
                "chatwizard_db_pool_max_connections",
            ):
                values[f"{s.name.removeprefix('chatwizard_db_')}_{labels['node']}"] += s.value
    return dict(values), dict(buckets)


class Sampler(threading.Thread):
    def __init__(self, metrics_url: str, interval_s: float = 5.0) -> None:
        super().__init__(name="sampler", daemon=True)
        self.metrics_url, self.interval_s = metrics_url, interval_s
        self.samples: list[Sample] = []
        self._stopping = threading.Event()
        self._start = time.monotonic()

    def run(self) -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    values, buckets = parse(client.get(self.metrics_url).text)
                    self.samples.append(Sample(round(started - self._start, 1), values, buckets))
                except httpx.HTTPError:
                    pass  # a missed sample shows as a gap in the charts
                self._stopping.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def stop(self) -> list[Sample]:
        self._stopping.set()
        self.join()
        return self.samples
