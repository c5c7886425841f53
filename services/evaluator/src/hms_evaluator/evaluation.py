"""The leader's work: feed the core, store its decisions, announce them.

Every decision goes the same way: the core changes state in memory and returns the events that
announce it; the ledger stores the new state together with those events (its outbox) in one
SQLite transaction; then the events are published with their deterministic ids as
``Nats-Msg-Id`` and leave the outbox. A crash between the two publishes them again on the next
start, as duplicates JetStream drops; a message is acked only after its effect is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hms_contracts import SlaBreached
from hms_contracts.bus import BusEvent
from hms_kit import Clock, Delivery
from nats.js import JetStreamContext
from opentelemetry import propagate
from prometheus_client import CollectorRegistry, Counter, Histogram

from .adapters import SqliteLedger
from .core.deadlines import DeadlineWatch
from .core.rules import Announcement, RuleEngine
from .core.samples import Sample
from .core.slo import SloBook, SloTracker
from .ports import ConfigSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceivedBatch:
    """A metric batch as the hot path reads it: its namespace (checked against the subject),
    its samples as documents, its stream sequence and when JetStream stored it."""

    namespace: str
    samples: list[Sample]
    seq: int
    stored_at: float


class EvaluatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.samples = Counter(
            "hms_evaluator_samples", "Samples read from metric batches", registry=r
        )
        self.alerts = Counter("hms_evaluator_alerts", "Alerts announced", ["change"], registry=r)
        self.breaches = Counter(
            "hms_evaluator_sla_breaches", "SLA breaches announced", ["reason"], registry=r
        )
        self.lag = Histogram(
            "hms_evaluator_ingest_lag_seconds",
            "From a metric batch stored in JetStream to its samples evaluated",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )


class Evaluation:
    """Rules, SLOs and deadlines of one leading evaluator."""

    def __init__(
        self,
        js: JetStreamContext,
        config: ConfigSource,
        ledger: SqliteLedger,
        clock: Clock,
        *,
        metrics: EvaluatorMetrics | None = None,
        slo_status_every_s: float = 60.0,
        enqueued: Callable[[DeadlineWatch, datetime], Any] | None = None,
        on_evaluated: Callable[[float], None] | None = None,
    ) -> None:
        self.js = js
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self.metrics = metrics or EvaluatorMetrics()
        self.slo_status_every_s = slo_status_every_s
        self.enqueued = enqueued
        self.on_evaluated = on_evaluated
        self.engine = RuleEngine()
        self.slos = SloBook()
        self.deadlines = DeadlineWatch()
        self.replayed_seq = 0
        #: a binding evaluated by a sample this recently is not evaluated again on a tick
        self.fresh_s = 1.0
        #: samples read from metric batches (those of metrics nothing uses included)
        self.read = 0
        self._status_at: dict[str, float] = {}
        self._colour: dict[str, str] = {}
        self._outbox = False
        self._lock = asyncio.Lock()

    # --- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take back the state of the previous run, follow the current config and send what
        the outbox still holds; nothing is evaluated before the first batch or tick."""
        self.engine.restore(await self.ledger.alert_states())
        marks, runs, durations = await self.ledger.deadline_state()
        self.deadlines.restore(marks, runs, durations)
        self._outbox = True
        async with self._lock:
            await self._settle(await self._sync_config(self.clock.now()), [])

    async def _sync_config(self, now: datetime) -> list[BusEvent]:
        t = now.timestamp()
        out: list[BusEvent] = [a.event for a in self.engine.set_rules(self.config.alerts(), t)]
        for tracker in self.slos.set_slos(self.config.slos()):
            await self._restore_slo(tracker)
        self.deadlines.set_jobs(self.config.jobs(), now)
        return out

    async def _restore_slo(self, tracker: SloTracker) -> None:
        minutes, bases, alerts = await self.ledger.slo_state(tracker.slo.key())
        tracker.restore(minutes, bases, alerts)

    # --- metrics ----------------------------------------------------------------------------

    def ingest(self, batches: Sequence[ReceivedBatch], *, slos: bool = True) -> set[Any]:
        """Feed batches to the windows (no evaluation): the bindings touched. A replay passes
        ``slos=False``: SLO counts are kept in the ledger, and counted twice otherwise."""
        touched: set[Any] = set()
        engine, book = self.engine, self.slos
        for batch in batches:
            if batch.seq <= self.replayed_seq:
                continue  # the replay already read it
            touched |= engine.ingest(batch.namespace, batch.samples)
            if slos and book.trackers:
                book.ingest(batch.namespace, batch.samples, engine.parse_time)
            self.read += len(batch.samples)
            self.metrics.samples.inc(len(batch.samples))
        return touched

    async def on_metrics(self, deliveries: Sequence[Delivery[ReceivedBatch]]) -> None:
        """One fetched batch of metric messages: windows updated, touched rules evaluated,
        changes stored and announced, before the messages are acked."""
        batches = [d.event for d in deliveries]
        async with self._lock:
            touched = self.ingest(batches)
            now = self.clock.now().timestamp()
            announced = self.engine.evaluate(touched, now)
            await self._settle([a.event for a in announced], announced)
        done = self.clock.now().timestamp()
        for batch in batches:
            lag = max(done - batch.stored_at, 0.0)
            self.metrics.lag.observe(lag)
            if self.on_evaluated is not None:
                self.on_evaluated(lag)

    # --- job runs ---------------------------------------------------------------------------

    async def on_run_events(self, deliveries: Sequence[Delivery[BusEvent]]) -> None:
        async with self._lock:
            now = self.clock.now()
            breaches: list[BusEvent] = []
            for d in deliveries:
                event = d.event
                breaches += self.deadlines.on_event(event, now)  # type: ignore[arg-type]
            await self._settle(breaches, [])

    # --- time -------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Follow config changes; drive ``for`` timers, no-data, SLOs and deadlines."""
        now = self.clock.now()
        enqueued: Any = ()
        if self.enqueued is not None and self.deadlines.at_risk(now):
            enqueued = await self.enqueued(self.deadlines, now)
        async with self._lock:
            t = now.timestamp()
            events = await self._sync_config(now)
            announced = self.engine.tick(t, fresh_s=self.fresh_s)
            events += [a.event for a in announced]
            slo_writes: list[tuple[str, Any]] = []
            for tracker in self.slos.trackers.values():
                burns, standing = tracker.evaluate(t)
                events += [b.event for b in burns]
                key = tracker.slo.key()
                due = self._status_at.get(key, -math.inf) + self.slo_status_every_s <= t
                if due or self._colour.get(key) != standing.status:
                    events.append(tracker.status_event(standing, t))
                    self._status_at[key], self._colour[key] = t, standing.status
                slo_writes += _slo_writes(tracker, t)
            events += self.deadlines.tick(now, enqueued)
            await self._settle(events, announced, slo_writes)

    # --- storing and announcing -------------------------------------------------------------

    async def _settle(
        self,
        events: list[BusEvent],
        announced: Sequence[Announcement],
        slo_writes: Sequence[tuple[str, Any]] = (),
    ) -> None:
        states = self.engine.drain_dirty()
        d = self.deadlines
        runs = [d.runs[k] for k in d.dirty if k in d.runs]
        marks = [(k, d.marks[k]) for k in d.dirty_marks if k in d.marks]
        durations = list(d.durations.items()) if d.dirty else []
        d.dirty, d.dirty_marks = set(), set()
        if states or events or slo_writes or runs or marks:
            await self.ledger.commit(states, events, slo_writes, runs, marks, durations)
        for a in announced:
            self.metrics.alerts.labels(a.change).inc()
        for event in events:
            if isinstance(event, SlaBreached):
                self.metrics.breaches.labels(event.reason).inc()
                log.warning("SLA breach %s: %s", event.reason, event.detail)
            elif event.subject().startswith("ops.alert."):
                log.info("alert %s: %s", event.subject().rsplit(".", 1)[1], event)
        if events:
            self._outbox = True
        if self._outbox:
            try:
                await self._publish_outbox()
            except Exception as exc:  # stored in the outbox: the next tick sends them
                log.warning("announcements wait in the outbox: %s", exc or type(exc).__name__)

    async def _publish_outbox(self) -> None:
        rows = await self.ledger.outbox()
        if not rows:
            self._outbox = False
            return
        pending = []
        for event_id, subject, payload in rows:
            headers = {"Nats-Msg-Id": event_id, "Content-Type": "application/json"}
            propagate.inject(headers)
            pending.append(await self.js.publish_async(subject, payload, headers=headers))
        await asyncio.wait_for(asyncio.gather(*pending), 10.0)
        await self.ledger.sent([event_id for event_id, _, _ in rows])
        self._outbox = False


def _slo_writes(tracker: SloTracker, now: float) -> list[tuple[str, Any]]:
    key = tracker.slo.key()
    writes: list[tuple[str, Any]] = []
    if tracker.dirty_minutes:
        writes.append(
            (
                "INSERT OR REPLACE INTO slo_minutes VALUES (?, ?, ?, ?)",
                [
                    (key, m, *tracker.buckets[m])
                    for m in tracker.dirty_minutes
                    if m in tracker.buckets
                ],
            )
        )
        first = int((now - tracker.keep_s) // 60)
        writes.append(("DELETE FROM slo_minutes WHERE slo_key = ? AND minute < ?", [(key, first)]))
    if tracker.dirty_bases:
        writes.append(
            (
                "INSERT OR REPLACE INTO slo_bases VALUES (?, ?, ?, ?)",
                [
                    (key, role, json.dumps(series), tracker.bases[(role, series)])
                    for role, series in tracker.dirty_bases
                ],
            )
        )
    if tracker.dirty_alerts:
        writes.append(
            (
                "INSERT OR REPLACE INTO slo_alerts VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (key, label, s.phase, s.active_since, s.last_held, s.value)
                    for label in tracker.dirty_alerts
                    if (s := tracker.alerts[label])
                ],
            )
        )
    tracker.dirty_minutes, tracker.dirty_bases, tracker.dirty_alerts = set(), set(), set()
    return writes
