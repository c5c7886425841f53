"""Metric samples kept in memory for a bounded time: the live graph's data.

Series are keyed by (metric name, sorted labels); each keeps at most ``max_points`` points no
older than ``span_s`` before the newest. Percentiles over time are computed per bucket.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Series:
    unit: str
    points: deque[tuple[float, float]] = field(default_factory=deque)  # (unix s, value)


class MetricWindow:
    """The recent samples of one namespace's metrics."""

    def __init__(
        self, span_s: float = 3600.0, max_points: int = 20_000, max_series: int = 5_000
    ) -> None:
        self.span_s = span_s
        self.max_points = max_points
        self.max_series = max_series
        self.series: dict[SeriesKey, Series] = {}
        #: samples of series beyond ``max_series`` that were not kept (a label explosion)
        self.refused = 0

    def add(self, name: str, value: float, at: float, unit: str, labels: Mapping[str, str]) -> None:
        key = (name, tuple(sorted(labels.items())))
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= self.max_series:
                self.refused += 1
                return
            series = self.series[key] = Series(unit, deque(maxlen=self.max_points))
        points = series.points
        if points and at < points[-1][0]:
            # out of order (a late batch): insert in place, rare
            items = sorted([*points, (at, value)])
            points.clear()
            points.extend(items[-self.max_points :])
        else:
            points.append((at, value))
        horizon = points[-1][0] - self.span_s
        while points and points[0][0] < horizon:
            points.popleft()

    def names(self) -> list[str]:
        return sorted({name for name, _ in self.series})

    def unit_of(self, name: str) -> str:
        for (n, _), s in self.series.items():
            if n == name:
                return s.unit
        return "1"

    def points(self, name: str, since: float = 0.0) -> list[tuple[float, float]]:
        """Every point of every series of ``name`` since ``since``, in time order."""
        found: list[tuple[float, float]] = []
        for (n, _), s in self.series.items():
            if n == name:
                found.extend(p for p in s.points if p[0] >= since)
        found.sort()
        return found

    def latest(self, name: str) -> float | None:
        pts = [s.points[-1] for (n, _), s in self.series.items() if n == name and s.points]
        return max(pts)[1] if pts else None


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def bucketed(
    points: Iterable[tuple[float, float]], start: float, end: float, buckets: int
) -> list[tuple[float, float, float]]:
    """(bucket start, p50, p99) per time bucket that has points."""
    width = max((end - start) / max(buckets, 1), 1e-9)
    groups: dict[int, list[float]] = {}
    for at, value in points:
        if start <= at <= end:
            groups.setdefault(min(int((at - start) / width), buckets - 1), []).append(value)
    return [
        (start + i * width, percentile(vals, 0.5), percentile(vals, 0.99))
        for i, vals in sorted(groups.items())
    ]
