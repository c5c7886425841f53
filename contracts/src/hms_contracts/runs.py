"""Job-run lifecycle events: scheduled, started, progressed, completed, failed, dead-lettered."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import ClassVar, Self

from pydantic import AwareDatetime, Field, JsonValue, ValidationInfo, model_validator

from . import subjects
from .bus import BusEvent, is_draft
from .fields import LongText, NonNegative, Slug, Text, Token, split_run_id
from .subjects import Family


def run_id_for(job_id: str, scheduled_at: datetime) -> str:
    """The run id ``<job_id>@<scheduled_at, UTC, ISO 8601>``, e.g. ``nightly@2025-01-01T00:00:00Z``.

    Every scheduler instance derives the same id for the same slot, so a standby that
    re-enqueues a slot produces a duplicate that dedupes rather than a second run.
    """
    if scheduled_at.utcoffset() is None:
        raise ValueError("scheduled_at must be timezone-aware")
    return f"{job_id}@{scheduled_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


class _RunFacts(BusEvent):
    family: ClassVar[Family] = subjects.JOB_EVENT

    job_id: Slug = Field(description="Job this run belongs to, e.g. ssa_re_score")
    run_id: str = Field(
        min_length=3,
        max_length=200,
        description="Run id, <job_id>@<scheduled_at UTC ISO 8601>, e.g. "
        "ssa_re_score@2025-01-01T00:00:00Z",
    )
    queue: Token = Field(description="Queue the run's work items go to, e.g. ssa_re_score_q")

    @model_validator(mode="after")
    def _run_belongs_to_job(self) -> Self:
        if split_run_id(self.run_id)[0] != self.job_id:
            raise ValueError(f"run_id {self.run_id!r} does not belong to job {self.job_id!r}")
        return self


class RunScheduled(_RunFacts):
    """The scheduler enqueued a run; published on the work queue ``job.run.<ns>.<queue>``."""

    family: ClassVar[Family] = subjects.JOB_RUN

    scheduled_at: AwareDatetime = Field(description="The schedule slot this run fills")
    deadline: AwareDatetime | None = Field(
        default=None, description="When the run must be complete (scheduled_at + SLA), if any"
    )
    task: dict[str, JsonValue] = Field(
        default_factory=dict, description="Parameters for the workers, from the job spec"
    )
    items: int = Field(default=1, ge=1, description="Number of work items the run fans out to")

    @model_validator(mode="after")
    def _ids_follow_the_slot(self, info: ValidationInfo) -> Self:
        expected = run_id_for(self.job_id, self.scheduled_at)
        if self.run_id != expected:
            raise ValueError(f"run_id must be {expected!r} (job_id@scheduled_at UTC)")
        if self.deadline is not None and self.deadline <= self.scheduled_at:
            raise ValueError("deadline must be after scheduled_at")
        if not is_draft(info) and self.event_id != self.expected_event_id():
            raise ValueError(f"event_id must be {self.expected_event_id()!r} (namespace|run_id)")
        return self

    def routing_token(self) -> str:
        """``job.run.<ns>.<queue>``."""
        return self.queue

    def natural_key(self) -> tuple[object, ...]:
        """The run id, qualified by namespace: two namespaces may schedule the same job id
        at the same instant, and both runs share the JOB_RUNS dedupe window."""
        return (self.namespace, self.run_id)


class RunAwaitingApproval(_RunFacts):
    """A run of a job with ``approval: true`` waits for a person's approval before it starts
    (``hms-ops jobs approve RUN_ID``); its deadline, and so its SLA clock, does not move."""

    event_type: ClassVar[str | None] = "awaiting_approval"

    deadline: AwareDatetime | None = Field(
        default=None, description="When the run must be complete, as scheduled (unchanged)"
    )

    def natural_key(self) -> tuple[object, ...]:
        """A run awaits approval once."""
        return (self.namespace, self.run_id, self.event_type)


class RunCancelRequested(_RunFacts):
    """The scheduler asks the worker running this run to stop it: ``overlap: replace`` and a
    newer run of the job is due. The worker stops the run's task (a command's whole process
    group) and reports it failed, without retry."""

    event_type: ClassVar[str | None] = "cancel_requested"

    reason: Text = Field(description="Why, e.g. replaced by run <run_id>")
    replaced_by: str | None = Field(default=None, description="The run that replaces it")

    def natural_key(self) -> tuple[object, ...]:
        """A run is asked to stop once."""
        return (self.namespace, self.run_id, self.event_type)


class RunStarted(_RunFacts):
    """A worker took the run (or a redelivery of it) and began."""

    event_type: ClassVar[str | None] = "started"

    worker_id: Text = Field(description="Instance id of the worker that took it")
    attempt: int = Field(ge=1, description="Delivery attempt, 1 for the first")

    def natural_key(self) -> tuple[object, ...]:
        """One start per attempt."""
        return (self.namespace, self.run_id, self.event_type, self.attempt)


class RunProgressed(_RunFacts):
    """Work items of the run are done, ``done`` of ``total``."""

    event_type: ClassVar[str | None] = "progressed"

    done: int = Field(ge=0, description="Work items finished so far")
    total: int = Field(ge=1, description="Work items in the run")

    @model_validator(mode="after")
    def _done_within_total(self) -> Self:
        if self.done > self.total:
            raise ValueError(f"done ({self.done}) exceeds total ({self.total})")
        return self

    def natural_key(self) -> tuple[object, ...]:
        """One report per count reached."""
        return (self.namespace, self.run_id, self.event_type, self.done)


class RunCompleted(_RunFacts):
    """Every work item of the run finished."""

    event_type: ClassVar[str | None] = "completed"

    items: int = Field(ge=0, description="Work items completed")
    duration_s: NonNegative = Field(description="Wall time from start to completion, seconds")

    def natural_key(self) -> tuple[object, ...]:
        """A run completes once."""
        return (self.namespace, self.run_id, self.event_type)


class RunFailed(_RunFacts):
    """An attempt of the run failed; it may be retried."""

    event_type: ClassVar[str | None] = "failed"

    error: LongText = Field(description="What went wrong (secrets masked, output capped)")
    attempt: int = Field(ge=1, description="Attempt that failed, 1 for the first")
    will_retry: bool = Field(description="Whether another attempt will follow")
    retry_in_s: NonNegative | None = Field(
        default=None, description="Delay before the next attempt, seconds, when will_retry"
    )

    def natural_key(self) -> tuple[object, ...]:
        """One failure per attempt."""
        return (self.namespace, self.run_id, self.event_type, self.attempt)


class RunDeadLettered(_RunFacts):
    """The run gave up after its last attempt and went to the dead-letter subject."""

    event_type: ClassVar[str | None] = "dead_lettered"

    reason: Text = Field(description="Why it was given up, e.g. the last error")
    attempts: int = Field(ge=1, description="Attempts made")

    def natural_key(self) -> tuple[object, ...]:
        """A run is dead-lettered once."""
        return (self.namespace, self.run_id, self.event_type)


def run_key(namespace: str, run_id: str) -> str:
    """The subject token of one run's work items: a digest of ``namespace|run_id`` (a run id
    holds ':' and '@', which no subject token may)."""
    return hashlib.sha256(f"{namespace}|{run_id}".encode()).hexdigest()[:24]


class WorkItemBatch(_RunFacts):
    """Work items a run fanned out, ``first`` onwards, on ``job.item.<ns>.<queue>.<run_key>``;
    items travel in batches (one stored message, one ack for many items) and each is done on
    its own; the run is complete when every item is done."""

    family: ClassVar[Family] = subjects.JOB_ITEM

    first: int = Field(ge=0, description="Index of the batch's first item in its run (0-based)")
    payloads: list[JsonValue] = Field(
        min_length=1,
        max_length=1000,
        description="What each item works on, e.g. a shard's file list; item first + i is "
        "payloads[i]",
    )
    task: dict[str, JsonValue] = Field(
        default_factory=dict, description="How a worker runs each item (the run's task)"
    )

    def routing_token(self) -> str:
        """``<queue>.<run_key>``: one subject per run."""
        return f"{self.queue}.{run_key(self.namespace, self.run_id)}"

    def natural_key(self) -> tuple[object, ...]:
        """A run's items are enqueued once per first index."""
        return (self.namespace, self.run_id, "items", self.first)

    def indices(self) -> range:
        """The indices of the batch's items in their run."""
        return range(self.first, self.first + len(self.payloads))
