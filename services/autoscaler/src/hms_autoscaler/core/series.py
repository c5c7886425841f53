"""A metric trigger's window of samples, folded into one reading; no I/O, ``now`` given.

Samples come from ``ops.metric.<ns>.*`` batches; a sample counts for a trigger when its name is
the trigger's metric and its labels include the trigger's matchers. Times are the samples' own
``observed_at`` (seconds since the epoch), so a late batch lands where it belongs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from hms_contracts.config import MetricTrigger

from .decide import Reading

#: most samples one trigger keeps (a window is minutes of a few series, not millions)
MAX_SAMPLES = 100_000


def _fold(values: list[float], aggregation: str) -> float:
    if aggregation == "avg":
        return sum(values) / len(values)
    if aggregation == "max":
        return max(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "sum":
        return sum(values)
    if aggregation == "count":
        return float(len(values))
    return values[-1]  # last


@dataclass
class SeriesWindow:
    """The samples of one trigger's series within its window."""

    trigger: MetricTrigger
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    last_seen: float | None = None

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        want = self.trigger.labels
        return name == self.trigger.metric and all(labels.get(k) == v for k, v in want.items())

    def add(self, observed_at: float, value: float) -> None:
        self.samples.append((observed_at, value))
        if len(self.samples) > MAX_SAMPLES:
            self.samples.popleft()
        self.last_seen = observed_at if self.last_seen is None else max(self.last_seen, observed_at)

    def reading(self, now: float) -> Reading:
        """The window's value (its aggregation), or unreadable when the series is stale."""
        t = self.trigger
        while self.samples and self.samples[0][0] < now - max(t.window_s, t.stale_after_s):
            self.samples.popleft()
        base = Reading(t.series, None, t.threshold, t.activation_threshold)
        if self.last_seen is None:
            return _error(base, "no sample received yet")
        age = now - self.last_seen
        if age > t.stale_after_s:
            return _error(
                base, f"stale: last sample {age:.0f}s ago (stale after {t.stale_after_s:g}s)"
            )
        values = [v for at, v in sorted(self.samples) if at >= now - t.window_s]
        if not values:
            return _error(base, f"no sample in the last {t.window}")
        return Reading(t.series, _fold(values, t.aggregation), t.threshold, t.activation_threshold)


def _error(base: Reading, error: str) -> Reading:
    return Reading(base.trigger, None, base.target, base.activation, error)
