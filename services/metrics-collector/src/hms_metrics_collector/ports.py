"""The metrics-collector's I/O behind small protocols: the sample store (SQLite by default, or
SQLite plus a Prometheus-compatible backend by remote write)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hms_contracts.metrics import MetricQuery, MetricSeries

#: (name, canonical labels text, unix time in ms, value)
Row = tuple[str, str, int, float]


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """The samples of one MetricSampleBatch that passed the checks, ready to store."""

    event_id: str
    namespace: str
    origin: str
    ttl_s: float | None
    rows: Sequence[Row] = field(default_factory=tuple)


class SampleStore(Protocol):
    """Where samples are kept and queried."""

    async def start(self) -> None:
        """Open the store (once; every other call may rely on it)."""
        ...

    def knows(self, namespace: str, name: str, labels: str) -> bool:
        """Whether the series is already stored (and not expired)."""
        ...

    def series_count(self, namespace: str) -> int:
        """How many series the namespace has now."""
        ...

    async def write(self, batches: Sequence[StoredBatch]) -> int:
        """Store the batches in one transaction, each once (by event id: a redelivered batch
        changes nothing); return how many batches were new."""
        ...

    async def query(self, namespace: str, query: MetricQuery, now: datetime) -> list[MetricSeries]:
        """The series matching the query, aggregated per step (QueryError when it cannot)."""
        ...

    async def prune(self, now: datetime) -> int:
        """Drop raw samples past the raw window, rollups past retention and expired pushed
        series; return how many series went."""
        ...

    async def close(self) -> None: ...
