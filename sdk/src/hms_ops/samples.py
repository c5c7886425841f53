"""Metric samples, buffered and encoded into MetricSampleBatch messages (the hot path).

``observe`` only appends to a bounded buffer (a deque: safe to call from any thread). Each
series (name, unit, labels) is validated once with the contracts' :class:`MetricSample` and
its JSON fragment cached; a batch is then written as the JSON the model would write, and its
``event_id`` is the batch's deterministic id (the test pins both to the model's own).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from hms_contracts import MetricSample, MetricSampleBatch, deterministic_id
from pydantic import ValidationError

from .errors import InvalidObject

#: (series prefix, series middle, value, unix time in whole microseconds)
Pending = tuple[str, str, float, int]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS: dict[int, str] = {}

_SERIES_CACHE_MAX = 10_000


def iso(us: int) -> str:
    """A unix time in microseconds as pydantic writes an aware UTC datetime (the part to the
    second is cached: samples come many to the second)."""
    seconds, fraction = divmod(us, 1_000_000)
    whole = _SECONDS.get(seconds)
    if whole is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        whole = _SECONDS[seconds] = datetime.fromtimestamp(seconds, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    return f"{whole}.{fraction:06d}Z" if fraction else f"{whole}Z"


def micros(at: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, no float rounding)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


class Encoder:
    """Validates series once and writes batches of one namespace and source."""

    def __init__(
        self,
        namespace: str,
        source: str,
        ttl_s: float | None = None,
        *,
        origin: Literal["push", "scrape"] = "push",
    ) -> None:
        if ttl_s is not None and not (math.isfinite(ttl_s) and 0 < ttl_s <= 366 * 86400):
            raise InvalidObject(
                f"metric_ttl {ttl_s!r} must be seconds, more than 0, at most a year"
            )
        self.namespace = namespace
        self.source = source
        self.origin = origin
        #: pushed series expire this long after their last sample (None: never)
        self.ttl_s = ttl_s
        self._ttl = "" if ttl_s is None else f',"ttl_s":{float(ttl_s)!r}'
        self.subject = MetricSampleBatch.family.subject(namespace, source)
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, str]] = {}

    def series(self, name: str, unit: str, labels: Mapping[str, str] | None) -> tuple[str, str]:
        """The cached JSON fragments around a sample's time and value."""
        # labels in the caller's order: the same set in another order is one more cache entry
        # with the same fragments (they are written sorted), and no sort per sample
        key = (name, unit, tuple(labels.items()) if labels else ())
        found = self._series.get(key)
        if found is not None:
            return found
        try:
            MetricSample(
                name=name, value=0.0, unit=unit, labels=dict(key[2]), observed_at=datetime.now(UTC)
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidObject(f"sample of {name!r}: {problems}") from None
        fragments = (
            '{"labels":'
            + json.dumps(dict(key[2]), sort_keys=True, separators=(",", ":"))
            + ',"name":'
            + json.dumps(name)
            + ',"observed_at":"',
            '","unit":' + json.dumps(unit) + ',"value":',
        )
        if len(self._series) >= _SERIES_CACHE_MAX:
            self._series.clear()
        self._series[key] = fragments
        return fragments

    def encode(self, batch: list[Pending]) -> tuple[str, bytes]:
        """``(event_id, body)`` of one MetricSampleBatch holding ``batch``."""
        samples = (
            "["
            + ",".join(
                f"{prefix}{iso(ts)}{middle}{value!r}}}" for prefix, middle, value, ts in batch
            )
            + "]"
        )
        digest = hashlib.sha256(samples.encode()).hexdigest()[:32]
        event_id = deterministic_id(self.namespace, "metrics", self.source, digest)
        body = (
            f'{{"event_id":{json.dumps(event_id)},"occurred_at":"{iso(time.time_ns() // 1000)}",'
            f'"namespace":"{self.namespace}","schema_version":1,"source":"{self.source}",'
            f'"origin":"{self.origin}","samples":{samples}{self._ttl}}}'
        )
        return event_id, body.encode()


class Buffer:
    """A bounded buffer of samples: when full, the oldest goes and is counted."""

    def __init__(self, encoder: Encoder, max_samples: int) -> None:
        self.encoder = encoder
        self.max_samples = max_samples
        self.dropped = 0
        self.accepted = 0
        self._items: deque[Pending] = deque(maxlen=max_samples)

    def add(
        self,
        name: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        unit: str = "1",
        at: int | None = None,
    ) -> int:
        """Buffer one sample; return how many are waiting."""
        value = float(value)
        if not math.isfinite(value):
            raise InvalidObject(f"sample of {name!r}: value {value} is not finite")
        prefix, middle = self.encoder.series(name, unit, labels)
        items = self._items
        if len(items) == self.max_samples:
            self.dropped += 1  # the deque drops the oldest
        items.append((prefix, middle, value, time.time_ns() // 1000 if at is None else at))
        self.accepted += 1
        return len(items)

    def take(self, count: int) -> list[Pending]:
        """Up to ``count`` of the oldest samples, removed from the buffer."""
        items = self._items
        out: list[Pending] = []
        pop = items.popleft
        for _ in range(min(count, len(items))):
            out.append(pop())
        return out

    def __len__(self) -> int:
        return len(self._items)
