"""Job deadlines: the SLA monitor, a dead-man's switch independent of the scheduler.

From each job's spec (kind ``job`` with ``sla_minutes``) the monitor computes the occurrences
itself (the same cron reading as the scheduler, :mod:`hms_contracts.config.schedule`), follows
the runs' events and reports a breach as soon as a run's deadline can no longer be met, or has
passed, once per run and reason:

- ``not_fired``: no run started by the latest start that could still finish in time (the
  deadline less the job's last run time, or the deadline itself when it has none), and its work
  item is not in the work queue either: the scheduler did not fire it;
- ``queue_wait``: the same, but its work item waits in the queue (no worker took it), or it
  started too late to finish in time at its usual pace;
- ``run_overrun``: the run is still going at its deadline, or completed after it;
- ``failed``: it failed for good (no retry left, or dead-lettered);
- ``missed_catchup``: a later run of the job started while this one never did, outside the
  job's catch-up window: the scheduler skipped it after downtime.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from hms_contracts import SlaBreached
from hms_contracts.alerts import BreachReason
from hms_contracts.config import Job
from hms_contracts.config.schedule import slots_after
from hms_contracts.fields import split_run_id
from hms_contracts.runs import (
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunStarted,
    run_id_for,
)

RunEvent = RunStarted | RunProgressed | RunCompleted | RunFailed | RunDeadLettered

SLOTS_PER_TICK = 1000
KEEP_SETTLED = timedelta(days=2)


@dataclass(slots=True)
class ExpectedRun:
    """One occurrence of a job and what became of it."""

    namespace: str
    job_id: str
    run_id: str
    scheduled_at: datetime
    deadline: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed: bool = False
    reported: set[str] = field(default_factory=set)

    @property
    def settled(self) -> bool:
        return self.completed_at is not None or self.failed


class DeadlineWatch:
    """Every job with an SLA, its expected runs and their breaches."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.marks: dict[str, datetime] = {}
        self.runs: dict[tuple[str, str], ExpectedRun] = {}
        self.durations: dict[str, float] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.dirty_marks: set[str] = set()

    @staticmethod
    def _job_key(namespace: str, job_id: str) -> str:
        return f"{namespace}.job.{job_id}"

    def set_jobs(self, jobs: Iterable[Job], now: datetime) -> None:
        """Follow these jobs; a job seen for the first time is expected from now on."""
        self.jobs = {j.key(): j for j in jobs if j.sla is not None}
        for run_key, run in list(self.runs.items()):
            if self._job_key(run.namespace, run.job_id) not in self.jobs:
                del self.runs[run_key]  # no longer followed (removed, or its SLA dropped)
        for job_key in self.jobs:
            if job_key not in self.marks:
                self.marks[job_key] = now
                self.dirty_marks.add(job_key)

    def restore(
        self,
        marks: dict[str, datetime],
        runs: Iterable[ExpectedRun],
        durations: dict[str, float],
    ) -> None:
        self.marks.update(marks)
        self.durations.update(durations)
        for run in runs:
            self.runs[(run.namespace, run.run_id)] = run

    # --- events -----------------------------------------------------------------------------

    def _expected(self, namespace: str, run_id: str) -> ExpectedRun | None:
        found = self.runs.get((namespace, run_id))
        if found is not None:
            return found
        job_id, at_text = split_run_id(run_id)
        job = self.jobs.get(self._job_key(namespace, job_id))
        if job is None or job.sla is None:
            return None
        try:
            scheduled_at = datetime.fromisoformat(at_text)
        except ValueError:
            return None
        if scheduled_at.utcoffset() is None or run_id_for(job_id, scheduled_at) != run_id:
            return None
        run = ExpectedRun(namespace, job_id, run_id, scheduled_at, scheduled_at + job.sla)
        self.runs[(namespace, run_id)] = run
        return run

    def on_event(self, event: RunEvent, now: datetime) -> list[SlaBreached]:
        """Take one run event; the breaches it reveals."""
        run = self._expected(event.namespace, event.run_id)
        if run is None:
            return []
        key = (run.namespace, run.run_id)
        self.dirty.add(key)
        out: list[SlaBreached] = []
        job_key = self._job_key(run.namespace, run.job_id)
        if isinstance(event, RunStarted | RunProgressed) and run.started_at is None:
            run.started_at = event.occurred_at
            usual = self.durations.get(job_key, 0.0)
            late = run.started_at + timedelta(seconds=usual) > run.deadline
            if late and not run.settled and not run.reported:
                out += self._breach(
                    run,
                    "queue_wait",
                    now,
                    f"run {run.run_id} started at {run.started_at:%Y-%m-%d %H:%M:%S} UTC, "
                    f"{_late(run.started_at - run.scheduled_at)} after its slot; at its usual "
                    f"{usual:.0f} s it cannot finish by {run.deadline:%Y-%m-%d %H:%M:%S} UTC",
                )
            out += self._skipped_before(run, now)
        elif isinstance(event, RunCompleted):
            run.completed_at = event.occurred_at
            self.durations[job_key] = event.duration_s
            if event.occurred_at > run.deadline:
                out += self._breach(
                    run,
                    "run_overrun",
                    now,
                    f"run {run.run_id} completed at {event.occurred_at:%Y-%m-%d %H:%M:%S} UTC, "
                    f"{_late(event.occurred_at - run.deadline)} after its deadline",
                )
        elif (isinstance(event, RunFailed) and not event.will_retry) or isinstance(
            event, RunDeadLettered
        ):
            run.failed = True
            why = event.error if isinstance(event, RunFailed) else event.reason
            out += self._breach(
                run, "failed", now, f"run {run.run_id} failed for good: {why}"[:1024]
            )
        return out

    def _skipped_before(self, started: ExpectedRun, now: datetime) -> list[SlaBreached]:
        job = self.jobs.get(self._job_key(started.namespace, started.job_id))
        if job is None:
            return []
        window = job.catchup_td
        out = []
        for run in list(self.runs.values()):
            if (
                run.namespace == started.namespace
                and run.job_id == started.job_id
                and run.scheduled_at < started.scheduled_at
                and run.started_at is None
                and not run.settled
                and not run.reported
                and (window is None or run.scheduled_at < started.scheduled_at - window)
            ):
                out += self._breach(
                    run,
                    "missed_catchup",
                    now,
                    f"run {run.run_id} never started and the later run {started.run_id} did: "
                    "its slot was skipped (missed after downtime, outside the catch-up window)",
                )
        return out

    # --- time -------------------------------------------------------------------------------

    def at_risk(self, now: datetime) -> list[ExpectedRun]:
        """Runs not started whose latest start has come: ask whether they wait in the work
        queue before :meth:`tick` (``enqueued``) tells ``queue_wait`` from ``not_fired``."""
        self._expect(now)
        return [
            run
            for run in self.runs.values()
            if run.started_at is None
            and not run.settled
            and not run.reported
            and now >= run.deadline - timedelta(seconds=self._usual(run))
        ]

    def _usual(self, run: ExpectedRun) -> float:
        return self.durations.get(self._job_key(run.namespace, run.job_id), 0.0)

    def tick(self, now: datetime, enqueued: Container[tuple[str, str]] = ()) -> list[SlaBreached]:
        """Expect the occurrences up to now and report the deadlines that can no longer be
        met or have passed; ``enqueued`` holds the (namespace, run id) of runs whose work item
        is known to wait in the work queue."""
        self._expect(now)
        out: list[SlaBreached] = []
        for key, run in list(self.runs.items()):
            if run.settled:
                if now - run.deadline > KEEP_SETTLED:
                    del self.runs[key]
                continue
            usual = self._usual(run)
            if run.started_at is None:
                if now >= run.deadline - timedelta(seconds=usual) and not run.reported:
                    pace = f" (a run takes about {usual:.0f} s)" if usual else ""
                    if key in enqueued:
                        out += self._breach(
                            run,
                            "queue_wait",
                            now,
                            f"run {run.run_id} waits in its work queue and its deadline "
                            f"{run.deadline:%Y-%m-%d %H:%M:%S} UTC can no longer be met{pace}: "
                            "no worker took it",
                        )
                    else:
                        out += self._breach(
                            run,
                            "not_fired",
                            now,
                            f"run {run.run_id} has not started and is not in its work queue; "
                            f"its deadline {run.deadline:%Y-%m-%d %H:%M:%S} UTC can no longer "
                            f"be met{pace}: the scheduler did not fire it",
                        )
            elif now >= run.deadline:
                out += self._breach(
                    run,
                    "run_overrun",
                    now,
                    f"run {run.run_id}, started at {run.started_at:%Y-%m-%d %H:%M:%S} UTC, "
                    f"is still running at its deadline {run.deadline:%Y-%m-%d %H:%M:%S} UTC",
                )
            if now - run.deadline > KEEP_SETTLED:
                del self.runs[key]
        return out

    def _expect(self, now: datetime) -> None:
        for key, job in self.jobs.items():
            mark = self.marks.get(key, now)
            if job.paused:
                self.marks[key] = now
                continue
            for slot in islice(slots_after(job, mark), SLOTS_PER_TICK):
                if slot > now:
                    break
                assert job.sla is not None
                run_id = run_id_for(job.name, slot)
                self.runs.setdefault(
                    (job.namespace, run_id),
                    ExpectedRun(job.namespace, job.name, run_id, slot, slot + job.sla),
                )
                self.dirty.add((job.namespace, run_id))
                self.marks[key] = slot
                self.dirty_marks.add(key)

    def _breach(
        self, run: ExpectedRun, reason: BreachReason, now: datetime, detail: str
    ) -> list[SlaBreached]:
        if reason in run.reported:
            return []
        run.reported.add(reason)
        self.dirty.add((run.namespace, run.run_id))
        return [
            SlaBreached.create(
                namespace=run.namespace,
                occurred_at=now,
                reason=reason,
                job_id=run.job_id,
                run_id=run.run_id,
                deadline=run.deadline,
                severity="critical",
                detail=detail,
            )
        ]


def _late(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{delta.total_seconds():.0f} s"
