"""Storing sample batches from the ``metrics_collector`` durable: check each batch and each
sample, store the good ones in one transaction per fetched batch of messages, then ack.

A batch is read leniently (:class:`IncomingBatch`: NaN and odd names parse), so that one bad
sample costs itself only: it is counted with its reason and left out. A batch refused as a
whole (its namespace is not the subject's, or is unknown; too many samples) goes to the dead
letters with the reason and is acked; a body that is not a sample batch at all is dead-lettered
by the kit's consumer.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from hms_contracts import subjects
from hms_contracts.base import Event
from hms_contracts.fields import Token
from hms_kit import Delivery, KitMetrics, dead_letter
from nats.aio.client import Client
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .core import labels_key, sample_problem
from .metrics import CollectorMetrics
from .ports import Row, SampleStore, StoredBatch
from .store import ms

log = logging.getLogger(__name__)


class LooseSample(BaseModel):
    """A sample as sent, before its checks (any float, any name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    value: float
    unit: str = "1"
    labels: dict[str, str] = Field(default_factory=dict)
    observed_at: AwareDatetime


class IncomingBatch(Event):
    """A MetricSampleBatch read leniently: the envelope strictly, the samples one by one."""

    source: Token
    origin: Literal["scrape", "push"]
    samples: tuple[LooseSample, ...] = Field(min_length=1)
    ttl_s: float | None = Field(default=None, gt=0, le=366 * 86400, allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one namespace and one batch may hold."""

    max_batch_samples: int = 10_000
    max_series_per_namespace: int = 10_000
    max_labels: int = 32


class Ingest:
    """The handler of the store's BatchConsumer."""

    def __init__(
        self,
        nc: Client,
        store: SampleStore,
        limits: Limits,
        known_namespace: Callable[[str], bool],
        metrics: CollectorMetrics,
        kit_metrics: KitMetrics | None = None,
    ) -> None:
        self.nc = nc
        self.store = store
        self.limits = limits
        self.known_namespace = known_namespace
        self.metrics = metrics
        self.kit_metrics = kit_metrics
        self._logged = 0.0

    def batch_problem(self, d: Delivery[IncomingBatch]) -> tuple[str, str] | None:
        """(reason, explanation) when the whole batch is refused."""
        event = d.event
        subject_ns = subjects.METRIC.namespace_of(d.msg.subject)
        if event.namespace != subject_ns:
            return "namespace_mismatch", (
                f"batch says namespace {event.namespace!r} but came on {d.msg.subject!r}"
            )
        if not self.known_namespace(event.namespace):
            return "unknown_namespace", f"namespace {event.namespace!r} is not known here"
        if len(event.samples) > self.limits.max_batch_samples:
            return "oversized_batch", (
                f"{len(event.samples)} samples; at most {self.limits.max_batch_samples} a batch"
            )
        return None

    async def handle(self, batch: Sequence[Delivery[IncomingBatch]]) -> None:
        started = time.perf_counter()
        await self.store.start()  # the series it knows are read before the checks
        stored: list[StoredBatch] = []
        refused: Counter[str] = Counter()
        new_series: dict[str, set[tuple[str, str]]] = {}
        taken = 0
        for d in batch:
            problem = self.batch_problem(d)
            if problem is not None:
                reason, why = problem
                self.metrics.rejected_batches.labels(reason=reason).inc()
                await dead_letter(self.nc, d.msg, f"{reason}: {why}", self.kit_metrics, term=False)
                continue
            event = d.event
            ns = event.namespace
            fresh = new_series.setdefault(ns, set())
            rows: list[Row] = []
            for s in event.samples:
                reason = sample_problem(s.name, s.value, s.labels, self.limits.max_labels)
                text = labels_key(s.labels)
                if (
                    not reason
                    and (s.name, text) not in fresh
                    and not self.store.knows(ns, s.name, text)
                ):
                    if (
                        self.store.series_count(ns) + len(fresh)
                        >= self.limits.max_series_per_namespace
                    ):
                        reason = "series_limit"
                    else:
                        fresh.add((s.name, text))
                if reason:
                    refused[reason] += 1
                    continue
                rows.append((s.name, text, ms(s.observed_at), s.value))
            if rows:
                stored.append(StoredBatch(event.event_id, ns, event.origin, event.ttl_s, rows))
                taken += len(rows)
        if stored:
            await self.store.write(stored)
        self.metrics.samples.inc(taken)
        for reason, n in refused.items():
            self.metrics.rejected_samples.labels(reason=reason).inc(n)
        if refused and time.monotonic() - self._logged > 10:
            self._logged = time.monotonic()
            log.warning("refused samples: %s", dict(refused))
        self.metrics.write_seconds.observe(time.perf_counter() - started)
