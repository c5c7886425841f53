"""The metrics-collector's decisions as pure functions, without I/O: which samples are taken,
how a query's series selector reads, and how the samples of one step are aggregated."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hms_contracts.tokens import TOKEN_PART

SERVICE = "metrics-collector"

_NAME = re.compile(rf"^{TOKEN_PART}(\.{TOKEN_PART})*$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SELECTOR = re.compile(r"^\s*(?P<name>[^{}\s]+)\s*(?:\{(?P<matchers>.*)\}\s*)?$", re.DOTALL)
_ESCAPED = re.compile(r"\\(.)")
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')

#: the reasons a sample or a batch is refused, as counted on /metrics
REASONS = (
    "non_finite",
    "bad_name",
    "bad_labels",
    "too_many_labels",
    "series_limit",
    "unknown_namespace",
    "namespace_mismatch",
    "oversized_batch",
    "malformed",
)


class QueryError(ValueError):
    """A query that cannot be answered; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Selector:
    """``name{k="v",...}``: a metric name and equality matchers on labels."""

    name: str
    matchers: tuple[tuple[str, str], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k, "") == v for k, v in self.matchers)


def parse_selector(text: str) -> Selector:
    """Read ``api.latency_ms{route="/claims"}``; QueryError saying what is wrong otherwise."""
    match = _SELECTOR.fullmatch(text)
    if match is None or not _NAME.fullmatch(match["name"]):
        raise QueryError(
            f"series {text[:80]!r} must be a metric name (dotted tokens of letters, digits, '_' "
            "and '-'), optionally followed by {label=\"value\", ...}"
        )
    body = (match["matchers"] or "").strip()
    matchers: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise QueryError(
                f'series {text[:80]!r}: label matchers must look like name="value" '
                f"(equality only), at {body[pos : pos + 20]!r}"
            )
        matchers.append((m[1], _ESCAPED.sub(r"\1", m[2])))
        pos = m.end()
    return Selector(match["name"], tuple(sorted(matchers)))


def labels_key(labels: Mapping[str, str]) -> str:
    """A label set as one canonical text (sorted JSON), the identity of a series."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sample_problem(name: str, value: float, labels: Mapping[str, str], max_labels: int) -> str:
    """Why one sample cannot be stored ('' when it can): a reason from :data:`REASONS`."""
    if not math.isfinite(value):
        return "non_finite"
    if len(name) > 200 or not _NAME.fullmatch(name):
        return "bad_name"
    if len(labels) > max_labels:
        return "too_many_labels"
    for k, v in labels.items():
        if not _LABEL_NAME.fullmatch(k) or not isinstance(v, str) or len(v) > 1024:
            return "bad_labels"
    return ""


# --- aggregation --------------------------------------------------------------------------


def quantile(q: float, values: Sequence[float]) -> float:
    """The q-quantile of ``values`` by linear interpolation between closest ranks (numpy's
    default, R's type 7, Prometheus' ``quantile_over_time``)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def increase(values: Sequence[float], base: float | None) -> float | None:
    """How much a counter grew over ``values`` (in time order) since ``base``, the last value
    before them; a drop is a counter reset (it counts from zero). None under two points."""
    points = list(values) if base is None else [base, *values]
    if len(points) < 2:
        return None
    total = 0.0
    for before, after in itertools.pairwise(points):
        total += after - before if after >= before else after
    return total


def aggregate(fn: str, values: Sequence[float], base: float | None, step_s: float) -> float | None:
    """One step's aggregate of raw values (time order); None when the step has none to give."""
    if fn == "rate":
        grown = increase(values, base)
        return None if grown is None else grown / step_s
    if not values:
        return None
    if fn == "last":
        return values[-1]
    if fn == "count":
        return float(len(values))
    if fn == "sum":
        return math.fsum(values)
    if fn == "avg":
        return math.fsum(values) / len(values)
    if fn == "min":
        return min(values)
    if fn == "max":
        return max(values)
    if fn in QUANTILES:
        return quantile(QUANTILES[fn], values)
    raise QueryError(f"fn {fn!r} is not an aggregation")


@dataclass(frozen=True, slots=True)
class Rollup:
    """One series' minute: how many samples, their sum, min, max and the last value."""

    count: int
    sum: float
    min: float
    max: float
    last: float


def aggregate_rollups(
    fn: str, minutes: Sequence[Rollup], base: float | None, step_s: float
) -> float | None:
    """One step's aggregate from 1-minute rollups (older than the raw window). Quantiles need
    raw values, so a step of rollups gives none; rate reads the minutes' last values."""
    if fn == "rate":
        return aggregate("rate", [m.last for m in minutes], base, step_s)
    if not minutes or fn in QUANTILES:
        return None
    if fn == "last":
        return minutes[-1].last
    count = sum(m.count for m in minutes)
    total = math.fsum(m.sum for m in minutes)
    if fn == "count":
        return float(count)
    if fn == "sum":
        return total
    if fn == "avg":
        return total / count
    if fn == "min":
        return min(m.min for m in minutes)
    if fn == "max":
        return max(m.max for m in minutes)
    raise QueryError(f"fn {fn!r} is not an aggregation")


def step_ends(end_ms: int, range_ms: int, step_ms: int, max_points: int) -> list[int]:
    """The ends of the query's steps, oldest first: each step is ``(end - step, end]``."""
    count = max(1, math.ceil(range_ms / step_ms))
    if count > max_points:
        raise QueryError(
            f"range / step gives {count} points; at most {max_points} (use a larger step)"
        )
    return [end_ms - k * step_ms for k in range(count - 1, -1, -1)]
