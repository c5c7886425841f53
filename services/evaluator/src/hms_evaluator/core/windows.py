"""Streaming windows: a series' samples over a trailing range, aggregated as they arrive.

Each window keeps only what its aggregation needs and updates it per sample, so evaluating a
rule never re-scans its samples: a running sum for ``sum``/``avg``/``count``, a monotonic deque
for ``max``/``min``, a sorted list for quantiles (insert and remove in O(log n)), the counter
increases for ``rate``. Times are POSIX seconds; a sample older than the series' newest is
dropped (``add`` says so), as Prometheus drops out-of-order samples.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

from hms_contracts.config.rules import QUANTILES
from sortedcontainers import SortedList  # type: ignore[import-untyped]


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly between the closest ranks
    (numpy's default, ``method="linear"``)."""
    n = len(ordered)
    if n == 0:
        raise ValueError("quantile of no values")
    at = q * (n - 1)
    lo = math.floor(at)
    if lo + 1 >= n:
        return float(ordered[n - 1])
    below, above = ordered[lo], ordered[lo + 1]
    return float(below + (above - below) * (at - lo))


class Window:
    """One series' samples within ``span`` seconds of now, aggregated by ``aggregation``.

    ``Window(span, aggregation)`` builds the subclass that keeps what that aggregation needs.
    """

    __slots__ = ("aggregation", "last_t", "last_v", "samples", "span")

    def __new__(cls, span: float, aggregation: str) -> Window:
        if cls is Window:
            kind = _KINDS.get(aggregation)
            if kind is None:
                raise ValueError(f"unknown aggregation {aggregation!r}")
            return object.__new__(kind)
        return object.__new__(cls)

    def __init__(self, span: float, aggregation: str) -> None:
        self.span = span
        self.aggregation = aggregation
        self.last_t = -math.inf
        self.last_v = math.nan
        #: (time, value) in the window, oldest first (kept by the aggregations that need it)
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, v: float) -> bool:
        """Take a sample; False when it is older than the newest one (dropped)."""
        if t < self.last_t:
            return False
        self.last_t, self.last_v = t, v
        return True

    def expire(self, now: float) -> None:
        """Forget what fell out of the window."""

    def value(self, now: float) -> float | None:
        """The aggregate at ``now``; None when the window holds no sample (no data)."""
        return self.last_v if self.last_t >= now - self.span else None


class _Extreme(Window):
    """max or min: a monotonic deque of the candidates, oldest first."""

    __slots__ = ("_max", "_mono")

    def __init__(self, span: float, aggregation: str) -> None:
        super().__init__(span, aggregation)
        self._mono: deque[tuple[float, float]] = deque()
        self._max = aggregation == "max"

    def add(self, t: float, v: float) -> bool:
        if t < self.last_t:
            return False
        mono = self._mono
        if self._max:
            while mono and mono[-1][1] <= v:
                mono.pop()
        else:
            while mono and mono[-1][1] >= v:
                mono.pop()
        mono.append((t, v))
        self.last_t, self.last_v = t, v
        return True

    def expire(self, now: float) -> None:
        cutoff, mono = now - self.span, self._mono
        while mono and mono[0][0] < cutoff:
            mono.popleft()

    def value(self, now: float) -> float | None:
        mono = self._mono
        if mono and mono[0][0] < now - self.span:
            self.expire(now)
        return mono[0][1] if mono else None


class _Summed(Window):
    """sum, count, avg: the samples and their running sum."""

    __slots__ = ("_sum",)

    def __init__(self, span: float, aggregation: str) -> None:
        super().__init__(span, aggregation)
        self._sum = 0.0

    def add(self, t: float, v: float) -> bool:
        if t < self.last_t:
            return False
        self.samples.append((t, v))
        self._sum += v
        self.last_t, self.last_v = t, v
        return True

    def expire(self, now: float) -> None:
        cutoff, samples = now - self.span, self.samples
        while samples and samples[0][0] < cutoff:
            self._sum -= samples.popleft()[1]
        if not samples:
            self._sum = 0.0  # no drift left over from the removed ones

    def value(self, now: float) -> float | None:
        samples = self.samples
        if samples and samples[0][0] < now - self.span:
            self.expire(now)
        if not samples:
            return None
        agg = self.aggregation
        if agg == "count":
            return float(len(samples))
        if agg == "sum":
            return self._sum
        return self._sum / len(samples)


class _Quantile(Window):
    """p50 to p99: the samples, and their values in a sorted list."""

    __slots__ = ("_q", "_sorted")

    def __init__(self, span: float, aggregation: str) -> None:
        super().__init__(span, aggregation)
        self._sorted = SortedList()
        self._q = QUANTILES[aggregation]

    def add(self, t: float, v: float) -> bool:
        if t < self.last_t:
            return False
        self.samples.append((t, v))
        self._sorted.add(v)
        self.last_t, self.last_v = t, v
        return True

    def expire(self, now: float) -> None:
        cutoff, samples, ordered = now - self.span, self.samples, self._sorted
        while samples and samples[0][0] < cutoff:
            ordered.remove(samples.popleft()[1])

    def value(self, now: float) -> float | None:
        samples = self.samples
        if samples and samples[0][0] < now - self.span:
            self.expire(now)
        return quantile(self._sorted, self._q) if samples else None


class _Rate(Window):
    """rate: a counter's samples and the sum of its increases between them."""

    __slots__ = ("_inc",)

    def __init__(self, span: float, aggregation: str) -> None:
        super().__init__(span, aggregation)
        self._inc = 0.0

    def add(self, t: float, v: float) -> bool:
        if t < self.last_t:
            return False
        if self.samples:
            prev = self.last_v
            self._inc += v - prev if v >= prev else v  # a reset starts again from 0
        self.samples.append((t, v))
        self.last_t, self.last_v = t, v
        return True

    def expire(self, now: float) -> None:
        cutoff, samples = now - self.span, self.samples
        while len(samples) > 1 and samples[0][0] < cutoff:
            _, v0 = samples.popleft()
            v1 = samples[0][1]
            self._inc -= v1 - v0 if v1 >= v0 else v1
        if samples and samples[0][0] < cutoff:
            samples.popleft()
            self._inc = 0.0

    def value(self, now: float) -> float | None:
        self.expire(now)
        samples = self.samples
        if len(samples) < 2:
            return None
        elapsed = samples[-1][0] - samples[0][0]
        return self._inc / elapsed if elapsed > 0 else None

    def increase(self, now: float) -> float | None:
        """The counter's increase over the window."""
        self.expire(now)
        return self._inc if len(self.samples) >= 2 else None


_KINDS: dict[str, type[Window]] = {
    "last": Window,
    "max": _Extreme,
    "min": _Extreme,
    "sum": _Summed,
    "count": _Summed,
    "avg": _Summed,
    "rate": _Rate,
    **dict.fromkeys(QUANTILES, _Quantile),
}


def bucket_bound(le: str) -> float:
    """A histogram bucket's upper bound from its ``le`` label (``+Inf`` included)."""
    bound = float(le)
    if math.isnan(bound):
        raise ValueError(f"bucket bound le={le!r} is not a number")
    return bound


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile``: the ``q`` quantile from cumulative bucket counts
    ``(upper bound, count)``, interpolated linearly inside the bucket it falls in. None without
    observations or without the ``+Inf`` bucket."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][0] != math.inf:
        return None
    # cumulative counts never decrease; scrape races can make them, so smooth as Prometheus does
    counts: list[float] = []
    for _, count in ordered:
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    for i, (bound, count) in enumerate(zip((b for b, _ in ordered), counts, strict=True)):
        if count >= rank:
            if bound == math.inf:
                return ordered[i - 1][0] if i > 0 else None
            start = ordered[i - 1][0] if i > 0 else 0.0
            below = counts[i - 1] if i > 0 else 0.0
            if count == below:
                return bound
            return start + (bound - start) * (rank - below) / (count - below)
    return None


class HistogramWindow:
    """The buckets of one histogram series (its labels but ``le``) over a trailing range: each
    bucket's increase over the window, read as a quantile."""

    __slots__ = ("aggregation", "buckets", "span")

    def __init__(self, span: float, aggregation: str) -> None:
        if aggregation not in QUANTILES:
            raise ValueError(f"a histogram reads quantiles, not {aggregation!r}")
        self.span = span
        self.aggregation = aggregation
        self.buckets: dict[float, _Rate] = {}

    def add_bucket(self, bound: float, t: float, v: float) -> bool:
        window = self.buckets.get(bound)
        if window is None:
            window = self.buckets[bound] = _Rate(self.span, "rate")
        return window.add(t, v)

    def value(self, now: float) -> float | None:
        increases = [(b, w.increase(now)) for b, w in self.buckets.items()]
        counted = [(b, inc) for b, inc in increases if inc is not None]
        if len(counted) < len(increases) or not counted:
            return None
        return histogram_quantile(QUANTILES[self.aggregation], counted)

    @property
    def last_t(self) -> float:
        return max((w.last_t for w in self.buckets.values()), default=-math.inf)
