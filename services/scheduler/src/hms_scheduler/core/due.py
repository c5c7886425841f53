"""What a job should run now: ``due(job, watermark, now, ...) -> Decision``, a pure decision.

The watermark is the last slot already decided (run or reported), in UTC, persisted by the
service after the runs are stored on the bus. Slots are taken strictly after it, so a clock that
steps backwards re-fires nothing and a restart resumes where the last one stopped. Every slot is
decided exactly once, as one of:

- **run**: enqueued (``Decision.enqueue``);
- **missed**: outside the catch-up window, or beyond its cap, after downtime;
- **overlap**: ``overlap: forbid`` and a run of the job is still active, or an older catch-up
  slot that the newest one supersedes (runs of a forbid job never overlap);
- **replaced**: ``overlap: replace``, an older catch-up slot superseded by the newest one;
- **paused**: the job was paused when the slot came; a paused job accumulates nothing, and on
  resume it goes on from then.

Skipped slots are reported with their run ids (the first ``report_limit`` of them and the
count), never silently dropped; a backlog is never a storm: at most ``catchup_limit`` runs
are enqueued for the window, and at most ``scan_limit`` slots are read per decision (the
decision says ``more`` when it stopped there, and the next one goes on from its watermark).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hms_contracts.config import Job
from hms_contracts.runs import run_id_for

from .cron import jitter_for, slots_after

SkipReason = Literal["missed", "overlap", "replaced", "paused"]
Outcome = Literal["run", "missed", "overlap", "replaced", "paused"]


@dataclass(frozen=True)
class Slot:
    """One occurrence of a job's schedule."""

    scheduled_at: datetime
    """The slot, aware UTC; the run id is derived from it."""
    run_id: str
    fire_at: datetime
    """When it may be enqueued: the slot plus its jitter."""


@dataclass(frozen=True)
class Skipped:
    """Slots decided without a run, for one reason."""

    reason: SkipReason
    count: int
    run_ids: tuple[str, ...]
    """The first ``report_limit`` of them, oldest first."""


@dataclass(frozen=True)
class Decision:
    """What to do for one job now, and the watermark to persist once it is done."""

    watermark: datetime
    enqueue: tuple[Slot, ...] = ()
    cancel: tuple[str, ...] = ()
    """Active run ids to cancel before the new run starts (``overlap: replace``)."""
    skipped: tuple[Skipped, ...] = ()
    next_at: datetime | None = None
    """When the next slot may fire (None: the schedule has no more)."""
    more: bool = False
    """The decision stopped at ``scan_limit`` slots: decide again at once."""
    decided: tuple[tuple[Slot, Outcome], ...] = field(default=(), repr=False)
    """Every slot decided with its outcome, oldest first (what the ledger records)."""

    def skipped_for(self, reason: SkipReason) -> Skipped | None:
        return next((s for s in self.skipped if s.reason == reason), None)


def slot(job: Job, scheduled_at: datetime) -> Slot:
    run_id = run_id_for(job.name, scheduled_at)
    return Slot(scheduled_at, run_id, scheduled_at + jitter_for(run_id, job.jitter_td))


def due(
    job: Job,
    watermark: datetime | None,
    now: datetime,
    *,
    active: Collection[str] = (),
    catchup_limit: int = 10,
    report_limit: int = 100,
    scan_limit: int = 10_000,
) -> Decision:
    """Decide the job's slots after ``watermark`` up to ``now``.

    ``watermark`` None means the job is new: it starts from ``now`` (past slots are not its
    own). ``active`` holds the run ids of the job's runs still running, for the overlap policy.
    """
    start = now if watermark is None else watermark
    ready: list[Slot] = []
    pending: Slot | None = None
    more = False
    for at in slots_after(job, start):
        candidate = slot(job, at)
        if at > now or candidate.fire_at > now:
            pending = candidate  # later slots wait behind it, so the watermark stays ordered
            break
        ready.append(candidate)
        if len(ready) >= scan_limit:
            more = True
            break
    next_at = None if pending is None else pending.fire_at
    if not ready:
        return Decision(watermark=start, next_at=next_at, more=more)
    watermark_out = ready[-1].scheduled_at
    if more:
        next_at = now

    skipped: dict[SkipReason, list[Slot]] = {}
    if job.paused:
        skipped["paused"] = ready
        return _decision(watermark_out, (), (), skipped, ready, next_at, more, report_limit)

    window = job.catchup_td
    if more:
        in_window: list[Slot] = []  # the scan stopped before now: all of it is old backlog
    elif window is None:
        in_window = ready[-1:]  # one period: the latest slot, the one the downtime cost
    else:
        in_window = [s for s in ready if s.scheduled_at > now - window]
    in_window = in_window[-catchup_limit:] if catchup_limit > 0 else []
    missed = ready[: len(ready) - len(in_window)]
    if missed:
        skipped["missed"] = missed

    enqueue: list[Slot] = in_window
    cancel: tuple[str, ...] = ()
    if job.overlap == "forbid" and in_window:
        if active:
            enqueue, skipped["overlap"] = [], in_window
        else:
            enqueue = in_window[-1:]
            if in_window[:-1]:
                skipped["overlap"] = in_window[:-1]
    elif job.overlap == "replace" and in_window:
        enqueue, cancel = in_window[-1:], tuple(sorted(active))
        if in_window[:-1]:
            skipped["replaced"] = in_window[:-1]
    return _decision(
        watermark_out, tuple(enqueue), cancel, skipped, ready, next_at, more, report_limit
    )


def _decision(
    watermark: datetime,
    enqueue: tuple[Slot, ...],
    cancel: tuple[str, ...],
    skipped: dict[SkipReason, list[Slot]],
    decided: list[Slot],
    next_at: datetime | None,
    more: bool,
    report_limit: int,
) -> Decision:
    outcome: dict[str, Outcome] = {s.run_id: "run" for s in enqueue}
    for reason, slots in skipped.items():
        outcome.update(dict.fromkeys((s.run_id for s in slots), reason))
    return Decision(
        watermark=watermark,
        enqueue=enqueue,
        cancel=cancel,
        skipped=tuple(
            Skipped(reason, len(slots), tuple(s.run_id for s in slots[:report_limit]))
            for reason, slots in skipped.items()
        ),
        next_at=next_at,
        more=more,
        decided=tuple((s, outcome[s.run_id]) for s in decided),
    )
