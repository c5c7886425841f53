"""Streaming windows: each aggregation as the samples arrive and leave, checked against a
recomputation from scratch (numpy for the quantiles)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hms_evaluator.core.windows import HistogramWindow, Window, histogram_quantile


@pytest.mark.parametrize("q", ["p50", "p90", "p95", "p99"])
def test_quantiles_of_a_sliding_window_match_numpy_on_random_data(q: str) -> None:
    rng = random.Random(q)
    window = Window(60.0, q)
    samples: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(5000):
        t += rng.expovariate(20)  # about 20 samples a second: ~1200 in the window
        v = rng.lognormvariate(5, 1.2)
        window.add(t, v)
        samples.append((t, v))
        if rng.random() < 0.02:
            inside = [x for s, x in samples if s >= t - 60.0]
            expected = np.percentile(inside, int(q[1:]))
            assert window.value(t) == pytest.approx(expected, rel=1e-12)


def test_avg_sum_count_max_min_follow_the_window_as_samples_leave() -> None:
    rng = random.Random(7)
    windows = {agg: Window(10.0, agg) for agg in ("avg", "sum", "count", "max", "min", "last")}
    samples: list[tuple[float, float]] = []
    now = 0.0
    for i in range(2000):
        t, v = i * 0.1, rng.uniform(-50, 50)
        samples.append((t, v))
        for w in windows.values():
            w.add(t, v)
        now = max(now, t + rng.uniform(0, 3))  # evaluation time only moves on
        inside = [x for s, x in samples if s >= now - 10.0]
        assert windows["count"].value(now) == len(inside)
        assert windows["sum"].value(now) == pytest.approx(sum(inside), abs=1e-6)
        assert windows["avg"].value(now) == pytest.approx(sum(inside) / len(inside), abs=1e-9)
        assert windows["max"].value(now) == max(inside)
        assert windows["min"].value(now) == min(inside)
        assert windows["last"].value(now) == v


def test_an_empty_window_has_no_data() -> None:
    for agg in ("avg", "sum", "count", "max", "min", "last", "p99", "rate"):
        window = Window(5.0, agg)
        assert window.value(100.0) is None
        window.add(100.0, 1.0)
        assert window.value(106.0) is None, agg


def test_rate_is_the_counters_per_second_increase_across_a_reset() -> None:
    window = Window(60.0, "rate")
    for t, v in [(0, 100), (10, 110), (20, 130), (30, 5), (40, 25)]:  # reset at 30
        window.add(float(t), float(v))
    # increases 10 + 20 + 5 + 20 over 40 s
    assert window.value(40.0) == pytest.approx(55 / 40)
    # at 75 the samples at 0 and 10 are gone: 5 + 20 over the 20 s from 20 to 40
    assert window.value(75.0) == pytest.approx(25 / 20)


def test_a_sample_older_than_the_newest_is_dropped() -> None:
    window = Window(60.0, "max")
    assert window.add(10.0, 1.0)
    assert not window.add(5.0, 99.0)
    assert window.value(10.0) == 1.0


def test_histogram_quantile_interpolates_within_the_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 99.0), (2.0, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.5)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 5 / 9)
    assert histogram_quantile(0.995, buckets) == pytest.approx(1.0 + 1.0 * 0.5)
    assert histogram_quantile(0.99, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(1.0, 3.0)]) is None  # no +Inf bucket
    # everything above the highest finite bound: the bound is the answer
    assert histogram_quantile(0.99, [(1.0, 0.0), (math.inf, 10.0)]) == 1.0


def test_a_histogram_window_reads_quantiles_from_the_buckets_increase() -> None:
    window = HistogramWindow(300.0, "p99")
    bounds = [0.25, 0.5, 1.0, 2.0, math.inf]
    rng = random.Random(3)
    counts = dict.fromkeys(bounds, 0.0)
    observed: list[float] = []
    for second in range(0, 600, 15):
        for bound in bounds:
            window.add_bucket(bound, float(second), counts[bound])
        for _ in range(200):
            x = rng.expovariate(3)
            if second >= 300:
                observed.append(x)
            for bound in bounds:
                if x <= bound:
                    counts[bound] += 1
    p99 = window.value(585.0)
    assert p99 is not None
    exact = float(np.percentile(observed, 99))
    assert 1.0 <= p99 <= 2.0
    assert 1.0 <= exact <= 2.0  # both in the bucket that holds the 99th percentile
