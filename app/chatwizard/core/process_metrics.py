"""Memory and CPU of the whole app (gunicorn master + every worker), collected by the master.

In multiprocess mode each worker's own process_* metrics are not exported, and the seed's memory
targets are about the app as a whole, so the master sums its process tree at scrape time. The limit
is the container's cgroup limit when there is one, else ``CHATWIZARD_MEMORY_LIMIT_BYTES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def memory_limit_bytes(configured: int) -> int:
    try:
        value = CGROUP_LIMIT.read_text().strip()
    except OSError:
        return configured
    return int(value) if value.isdigit() else configured


class AppProcessCollector(Collector):
    def __init__(self, limit_bytes: int) -> None:
        self.root = psutil.Process()
        self.limit_bytes = limit_bytes

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rss, cpu, count = 0, 0.0, 0
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                rss += process.memory_info().rss
                times = process.cpu_times()
                cpu += times.user + times.system
                count += 1
            except psutil.NoSuchProcess:
                continue
        yield GaugeMetricFamily("chatwizard_memory_rss_bytes", "Resident memory of master + workers", rss)
        yield GaugeMetricFamily("chatwizard_memory_limit_bytes", "Memory the app may use", self.limit_bytes)
        yield GaugeMetricFamily("chatwizard_processes", "Processes in the app (master + workers)", count)
        yield CounterMetricFamily("chatwizard_cpu_seconds", "CPU time of master + live workers", cpu)
