"""The leader loop: on every tick of the clock, decide each job's slots and enqueue its runs.

A run is published with its deterministic id as ``Nats-Msg-Id`` (``namespace|job@slot``), then
the ledger records the decision and the job's watermark. So a crash between the two, or two
instances that both believe they lead, publish a duplicate that JetStream drops, never a second
run; and only the lease holder publishes at all (it checks the lease before each job).
"""

from __future__ import annotations

import asyncio
import logging
import operator
from asyncio import Future
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hms_contracts.config import Job
from hms_contracts.runs import RunCancelRequested, RunScheduled
from hms_kit import Clock
from hms_kit.publish import headers_for
from nats.js import JetStreamContext
from nats.js.api import PubAck
from prometheus_client import CollectorRegistry, Counter

from .core import Decision, due
from .ports import ActiveRuns, JobSource, Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """How much one decision may do (see :func:`hms_scheduler.core.due`)."""

    catchup_limit: int = 10
    report_limit: int = 100
    scan_limit: int = 10_000


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.enqueued = Counter("hms_scheduler_runs_enqueued", "Runs enqueued", registry=r)
        self.duplicates = Counter(
            "hms_scheduler_runs_duplicate",
            "Runs published again and dropped by JetStream as duplicates (a restart or a "
            "second instance)",
            registry=r,
        )
        self.skipped = Counter(
            "hms_scheduler_slots_skipped", "Slots decided without a run", ["reason"], registry=r
        )


class Firing:
    """One scheduler's decisions put into effect: publish, then record."""

    def __init__(
        self,
        js: JetStreamContext,
        jobs: JobSource,
        ledger: Ledger,
        active: ActiveRuns,
        clock: Clock,
        *,
        may_fire: Callable[[], bool] = lambda: True,
        limits: Limits = Limits(),
        metrics: SchedulerMetrics | None = None,
    ) -> None:
        self.js = js
        self.jobs = jobs
        self.ledger = ledger
        self.active = active
        self.clock = clock
        self.may_fire = may_fire
        self.limits = limits
        self.metrics = metrics or SchedulerMetrics()
        #: when the earliest next slot of any job may fire, after the last complete tick
        self.next_at: datetime | None = None
        # every job seen, with its next_at: a job is decided again when it changes or is due
        self._known: dict[str, tuple[Job, datetime | None]] = {}
        # the ledger's watermarks, read once; this loop is their only writer
        self._marks: dict[str, datetime] | None = None
        # the jobs of the last complete tick and their earliest next slot
        self._last: tuple[tuple[Job, ...], datetime | None] | None = None
        # this tick's publishes, their acks awaited before the ledger records the decisions
        self._runs: list[Future[PubAck]] = []
        self._cancels: list[Future[PubAck]] = []

    async def tick(self) -> bool:
        """Decide and put into effect every job's slots up to now; True when a decision
        stopped early and another tick should follow at once.

        A job is decided only when it is new or changed, or its next slot has come (its
        ``next_at``, kept between ticks), so a tick over ten thousand idle jobs costs little.
        The runs of every job due in this tick are published together (pipelined acks), then
        their decisions recorded in one transaction.
        """
        now = self.clock.now()
        self.next_at = None
        self._runs, self._cancels = [], []
        if self._marks is None:
            self._marks = await self.ledger.watermarks()
        marks = self._marks
        jobs = await self.jobs.jobs()
        last = self._last
        if (
            last is not None
            and (last[1] is None or now < last[1])
            and len(jobs) == len(last[0])
            and all(map(operator.is_, jobs, last[0]))
        ):
            # the same job objects as last tick and none due yet: nothing to look at
            self.next_at = last[1]
            return False
        self._last = None
        more = False
        upcoming: datetime | None = None
        batch: list[tuple[Job, Decision]] = []
        known: dict[str, tuple[Job, datetime | None]] = {}
        for job in jobs:
            key = job.key()
            seen = self._known.get(key)
            if seen is not None and (seen[0] is job or seen[0] == job):
                next_at = seen[1]
                if next_at is None or next_at > now:
                    known[key] = seen
                    upcoming = _earliest(upcoming, next_at)
                    continue
            if not self.may_fire():
                return False
            watermark = marks.get(key)
            decision = due(
                job,
                watermark,
                now,
                active=await self.active.active(job),
                catchup_limit=self.limits.catchup_limit,
                report_limit=self.limits.report_limit,
                scan_limit=self.limits.scan_limit,
            )
            next_at = None if decision.more else decision.next_at
            if decision.decided or watermark is None:
                batch.append((job, decision))
                await self._send(job, decision, now)
            else:
                known[key] = (job, next_at)
            upcoming = _earliest(upcoming, next_at)
            more |= decision.more
        if batch:
            if not self.may_fire():
                return False
            await self._effect(batch, now)
            for job, decision in batch:
                key = job.key()
                marks[key] = max(marks.get(key, decision.watermark), decision.watermark)
                known[key] = (job, None if decision.more else decision.next_at)
        self._known = known
        self.next_at = upcoming
        if not more:
            self._last = (tuple(jobs), upcoming)
        return more

    async def _send(self, job: Job, decision: Decision, now: datetime) -> None:
        """Publish the decision's cancels and runs at once, acks collected by :meth:`_effect`:
        the next job is decided while the server stores these."""
        replacing = decision.enqueue[-1].run_id if decision.enqueue else None
        for run_id in decision.cancel:
            # the worker running it stops it (overlap: replace), before the new run is enqueued
            cancel = RunCancelRequested.create(
                occurred_at=now,
                namespace=job.namespace,
                job_id=job.name,
                run_id=run_id,
                queue=job.queue,
                reason=f"replaced by run {replacing}" if replacing else "replaced",
                replaced_by=replacing,
            )
            log.warning("job %s: %s, so run %s is asked to stop", job.key(), cancel.reason, run_id)
            self._cancels.append(await self._publish_async(cancel))
        for s in decision.enqueue:
            self._runs.append(await self._publish_async(job.run_at(s.scheduled_at, now)))

    async def _publish_async(self, event: RunScheduled | RunCancelRequested) -> Future[PubAck]:
        return await self.js.publish_async(
            event.subject(), event.model_dump_json().encode(), headers=headers_for(event)
        )

    async def _effect(self, batch: list[tuple[Job, Decision]], now: datetime) -> None:
        runs, cancels, self._runs, self._cancels = self._runs, self._cancels, [], []
        await asyncio.wait_for(asyncio.gather(*cancels), 30)
        acks = await asyncio.wait_for(asyncio.gather(*runs), 30)
        duplicates = sum(1 for ack in acks if ack.duplicate)
        self.metrics.enqueued.inc(len(acks) - duplicates)
        self.metrics.duplicates.inc(duplicates)
        for job, decision in batch:
            for s in decision.enqueue:
                log.info("job %s: enqueued run %s on %s", job.key(), s.run_id, job.queue)
            for skipped in decision.skipped:
                self.metrics.skipped.labels(skipped.reason).inc(skipped.count)
                log.warning(
                    "job %s: %d slot(s) %s, not run: %s%s",
                    job.key(),
                    skipped.count,
                    skipped.reason,
                    ", ".join(skipped.run_ids),
                    "" if skipped.count == len(skipped.run_ids) else ", ...",
                )
        await self.ledger.record_many(batch, now)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


async def fire_forever(firing: Firing, tick_s: float) -> None:
    """Tick until cancelled, waking for the earliest next slot or after ``tick_s`` (to see
    changed jobs and the lease), whichever comes first; a failed tick (NATS away, a disk error)
    is retried on the next, from the same watermark, and its runs dedupe."""
    while True:
        try:
            more = await firing.tick()
        except Exception:
            log.exception("scheduler tick failed; retrying on the next one")
            more = False
        if more:
            await asyncio.sleep(0)
            continue
        wait = tick_s
        if firing.next_at is not None:
            wait = min(wait, max((firing.next_at - firing.clock.now()).total_seconds(), 0.0))
        await firing.clock.sleep(wait)
