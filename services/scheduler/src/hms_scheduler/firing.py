"""The leader loop: on every tick of the clock, decide each job's slots and enqueue its runs.

A run is published with its deterministic id as ``Nats-Msg-Id`` (``namespace|job@slot``), then
the ledger records the decision and the job's watermark. So a crash between the two, or two
instances that both believe they lead, publish a duplicate that JetStream drops, never a second
run; and only the lease holder publishes at all (it checks the lease before each job).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hms_contracts.config import Job
from hms_kit import Clock, publish_many
from nats.js import JetStreamContext
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

    async def tick(self) -> bool:
        """Decide and put into effect every job's slots up to now; True when a decision
        stopped early and another tick should follow at once."""
        now = self.clock.now()
        marks = await self.ledger.watermarks()
        more = False
        for job in await self.jobs.jobs():
            if not self.may_fire():
                return False
            watermark = marks.get(job.key())
            decision = due(
                job,
                watermark,
                now,
                active=await self.active.active(job),
                catchup_limit=self.limits.catchup_limit,
                report_limit=self.limits.report_limit,
                scan_limit=self.limits.scan_limit,
            )
            if decision.decided or watermark is None:
                await self._effect(job, decision, now)
            more |= decision.more
        return more

    async def _effect(self, job: Job, decision: Decision, now: datetime) -> None:
        for run_id in decision.cancel:
            # cancelling is the worker pool's, on an event of its own (issue 8, worker side)
            log.warning("job %s: replace asks to cancel run %s", job.key(), run_id)
        events = [job.run_at(s.scheduled_at, now) for s in decision.enqueue]
        acks = await publish_many(self.js, events)
        duplicates = sum(1 for ack in acks if ack.duplicate)
        self.metrics.enqueued.inc(len(acks) - duplicates)
        self.metrics.duplicates.inc(duplicates)
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
        await self.ledger.record(job, decision, now)


async def fire_forever(firing: Firing, tick_s: float) -> None:
    """Tick until cancelled; a failed tick (NATS away, a disk error) is retried on the next,
    from the same watermark, and its runs dedupe."""
    while True:
        try:
            more = await firing.tick()
        except Exception:
            log.exception("scheduler tick failed; retrying on the next one")
            more = False
        if more:
            await asyncio.sleep(0)
        else:
            await firing.clock.sleep(tick_s)
