"""The load-test report's arithmetic: k6 durations and the soak's RSS trend window."""

from __future__ import annotations

import pytest

from loadrun.report import rss_trend_mb_per_hour, seconds


def test_k6_durations_in_seconds():
    assert [seconds(d) for d in ("90s", "45m", "1h30m", "2m")] == [90, 2700, 5400, 120]
    with pytest.raises(ValueError, match="not a k6 duration"):
        seconds("ten minutes")


def test_the_trend_covers_only_its_window():
    # 10 minutes filling caches (+60 MB), then 30 minutes flat with a slow 10 MB/h leak.
    rows = [{"t_s": t, "rss_mb": 300 + 60 * min(t, 600) / 600 + 10 * max(0, t - 600) / 3600}
            for t in range(0, 2401, 5)]
    assert rss_trend_mb_per_hour(rows, 600, 2400) == pytest.approx(10, abs=0.1)
    assert rss_trend_mb_per_hour(rows, 0, 2400) > 50  # the warm-up would dominate a whole-run fit
    assert rss_trend_mb_per_hour(rows, 3000, 4000) is None
