"""Shared pieces of the benchmarks: the run context, repetition, and the one output format.

Every figure is one JSON object on stdout, keys in this order::

    {"bench": ..., "metric": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": ..., ...}

``baseline`` is the raw-NATS figure measured earlier in the same run (``None`` for the
baselines themselves) and ``ratio`` is ``value / baseline``. Extras (runs, sync mode) follow.
Logs go to stderr so stdout stays machine-readable.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Record = dict[str, Any]


@dataclass
class BenchContext:
    """What one run of ``bench/run.py`` hands to every bench: one server, one set of baselines."""

    url: str
    quick: bool = False
    sync_always: bool = True
    repeats: int = 5
    baselines: dict[str, float] = field(default_factory=dict)

    def n(self, full: int, quick: int) -> int:
        """The message count for this run: ``quick`` under ``--quick``, else ``full``."""
        return quick if self.quick else full

    @property
    def sync(self) -> str:
        """The server's JetStream fsync mode, as an extra field on JetStream figures."""
        return "always" if self.sync_always else "default"

    def vs(self, key: str, value: float) -> dict[str, float | None]:
        """``baseline``/``ratio`` keyword arguments for :func:`emit`, against a named baseline."""
        base = self.baselines.get(key)
        if base is None or base == 0:
            return {"baseline": base, "ratio": None}
        return {"baseline": base, "ratio": round(value / base, 3)}


def unique(prefix: str) -> str:
    """A fresh name (stream, subject token) so repetitions never see each other's data."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def emit(
    bench: str,
    metric: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    ratio: float | None = None,
    **extra: Any,
) -> Record:
    """Print one figure as one JSON line on stdout and return it."""
    record: Record = {
        "bench": bench,
        "metric": metric,
        "value": _round(value),
        "unit": unit,
        "baseline": None if baseline is None else _round(baseline),
        "ratio": ratio,
        **extra,
    }
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return record


class Measured(NamedTuple):
    """The median of several repetitions, and the repetitions themselves."""

    median: float
    runs: list[float]


async def median_of(repeats: int, factory: Callable[[], Awaitable[float]]) -> Measured:
    """Await ``factory()`` ``repeats`` times, one after the other, and take the median."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    runs = [await factory() for _ in range(repeats)]
    return Measured(statistics.median(runs), runs)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (``pct`` in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def rounded_runs(runs: list[float]) -> list[float]:
    return [_round(r) for r in runs]


def _round(value: float) -> float:
    return round(value, 1) if abs(value) >= 100 else round(value, 3)
