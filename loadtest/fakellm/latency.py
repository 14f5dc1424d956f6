"""How long the fake LLM waits: log-normal draws shaped by a median and a 95th percentile.

Service latencies are right-skewed; a log-normal with median m and p95 q has
mu = ln(m) and sigma = ln(q / m) / 1.645, since q = m * exp(1.645 * sigma).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from fakellm.config import FakeLLMConfig

Z95 = 1.6448536269514722  # the standard normal's 95th percentile


@dataclass(frozen=True)
class LogNormal:
    median: float
    sigma: float

    @classmethod
    def from_median_p95(cls, median: float, p95: float) -> LogNormal:
        sigma = math.log(p95 / median) / Z95 if median > 0 else 0.0
        return cls(median, sigma)

    def sample(self, rng: random.Random) -> float:
        return self.median * math.exp(self.sigma * rng.gauss(0.0, 1.0))


class LatencyModel:
    """Draws TTFT and embedding delays and paces tokens as ``config.latency_mode`` says."""

    def __init__(self, config: FakeLLMConfig) -> None:
        self.mode = config.latency_mode
        self.ttft_distribution = LogNormal.from_median_p95(config.ttft_median_s, config.ttft_p95_s)
        self.embedding_distribution = LogNormal.from_median_p95(
            config.embedding_median_s, config.embedding_p95_s
        )
        self.seconds_per_token = 0.0 if self.mode == "none" else 1.0 / config.tokens_per_second

    def _draw(self, distribution: LogNormal, rng: random.Random) -> float:
        if self.mode == "none":
            return 0.0
        if self.mode == "fixed":
            return distribution.median
        return distribution.sample(rng)

    def ttft(self, rng: random.Random) -> float:
        return self._draw(self.ttft_distribution, rng)

    def embedding_delay(self, rng: random.Random) -> float:
        return self._draw(self.embedding_distribution, rng)
