"""The ``job`` kind: what runs when, on which queue, with which promises.

The design document's file validates as it is (the namespace comes from ``hms-ops apply`` or
the document)::

    id: ssa_re_score
    schedule: "0 0 * * *"
    queue: ssa_re_score_q
    sla_minutes: 300
    image: usgov/ssa-worker:v1

``id`` is accepted as the job's ``name`` (the registry's word for it, kept canonical: a job's
document is written back with ``name``). The schedule is a five-field cron expression read in
``timezone``. Its syntax is checked here in two layers: the structure (five fields of cron
characters) always, and the values by the cron library ``cronsim`` (its own parse error) when
it is installed. ``hms-contracts`` itself depends on pydantic alone; the ``cron`` extra
(``hms-contracts[cron]``) brings ``cronsim``, and the scheduler and the ``hms-ops`` CLI install
it, so ``hms-ops apply`` rejects ``61 * * * *`` before it is stored and the scheduler, which
re-validates every job it follows, is the authority either way.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from hms_contracts.fields import Token
from hms_contracts.runs import RunScheduled, run_id_for

from .base import ConfigObject, Duration, kind, parse_duration

_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-#?]+$")
_PYTHON = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_IMAGE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9.\-]*(?::\d{1,5})?/)?"  # registry host[:port]/
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"  # path
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"  # :tag @digest
)

Overlap = Literal["forbid", "allow", "replace"]


def check_schedule(expr: str) -> str:
    """``expr`` if it is a five-field cron expression; ValueError with the expression and why.

    The values are checked by ``cronsim`` (the scheduler's cron library) when it is installed,
    with its own message (``Bad minute``, ...); without it, only the structure.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"schedule {expr!r} must have 5 fields ({' '.join(_CRON_FIELDS)}), not {len(fields)}"
        )
    for name, text in zip(_CRON_FIELDS, fields, strict=True):
        if not _CRON_FIELD.fullmatch(text):
            raise ValueError(f"schedule {expr!r}: the {name} field {text!r} is not cron syntax")
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:  # hms-contracts without its cron extra: the scheduler re-validates
        return expr
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"schedule {expr!r} is not a valid cron expression: {exc}") from None
    return expr


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone known to this system."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone {name!r} is not an IANA time zone (e.g. UTC, America/New_York)"
        ) from None
    return name


def _argv(value: object) -> object:
    """A command written as one string is split like a shell would, but never run by one."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:  # an unclosed quote
            raise ValueError(f"command {value!r}: {exc}") from None
    return value


def _check_python(value: str) -> str:
    if not _PYTHON.fullmatch(value):
        raise ValueError(f"python {value!r} must be 'package.module:function'")
    return value


def _check_image(value: str) -> str:
    if not _IMAGE.fullmatch(value):
        raise ValueError(
            f"image {value!r} must be a container image reference, e.g. usgov/ssa-worker:v1"
        )
    return value


Schedule = Annotated[
    str,
    AfterValidator(check_schedule),
    Field(
        description="Five-field cron expression read in the job's time zone, e.g. '0 0 * * *'",
        examples=["0 0 * * *"],
    ),
]
Argv = Annotated[
    tuple[Annotated[str, Field(min_length=1, max_length=4096)], ...],
    BeforeValidator(_argv),
    Field(min_length=1, max_length=256),
]

TASKS = ("command", "python", "image")
"""The ways a job says what to run; a job names exactly one."""


@kind
class Job(ConfigObject):
    """A scheduled job: when it runs (cron in a time zone), where its work goes (a queue),
    what runs (a command, a Python function or a container image) and its promises (SLA)."""

    kind: ClassVar[str] = "job"

    schedule: Schedule
    timezone: Annotated[str, AfterValidator(check_timezone)] = Field(
        default="UTC", description="IANA time zone the schedule is read in, e.g. America/New_York"
    )
    queue: Token = Field(description="Work queue the runs go to, e.g. ssa_re_score_q")
    sla_minutes: int | None = Field(
        default=None,
        ge=1,
        le=366 * 24 * 60,
        description="A run must be complete this many minutes after its scheduled time",
    )
    overlap: Overlap = Field(
        default="forbid",
        description="When a run is due while another still runs: forbid (skip it and report), "
        "allow (run both) or replace (cancel the running one, start the new one)",
    )
    catchup_window: Duration | None = Field(
        default=None,
        description="After downtime, occurrences missed less than this long ago still run "
        "(older ones are reported missed); default: one period of the schedule",
    )
    jitter: Duration | None = Field(
        default=None,
        description="Delay each run by up to this long, the same for a given run on every "
        "scheduler; default: none",
    )
    timeout: Duration | None = Field(
        default=None, description="A run is stopped after this long; at most the SLA"
    )
    retries: int = Field(default=0, ge=0, le=100, description="Attempts after the first")
    backoff: tuple[Duration, ...] = Field(
        default=(),
        max_length=100,
        description="Delay before each retry; the last one repeats; default: the worker's",
    )
    max_deliver: int | None = Field(
        default=None, ge=1, le=1000, description="Deliveries of a work item before dead-letter"
    )
    paused: bool = Field(
        default=False, description="Fire nothing while paused; on resume, go on from then"
    )
    approval: bool = Field(
        default=False, description="A run waits for a person's approval before it starts"
    )
    command: Argv | None = Field(
        default=None,
        description="Program and arguments (an argv list; a string is split like a shell "
        "line but never run by a shell)",
    )
    python: Annotated[str, AfterValidator(_check_python)] | None = Field(
        default=None, description="Python function to call, 'package.module:function'"
    )
    image: Annotated[str, AfterValidator(_check_image)] | None = Field(
        default=None, description="Container image the workers run, e.g. usgov/ssa-worker:v1"
    )

    @model_validator(mode="before")
    @classmethod
    def _id_is_the_name(cls, data: Any) -> Any:
        # the design documents write `id:`; the registry's key speaks of the name
        if isinstance(data, dict) and "id" in data:
            data = dict(data)
            job_id = data.pop("id")
            if "name" in data and data["name"] != job_id:
                raise ValueError(
                    f"id {job_id!r} and name {data['name']!r} differ; give one of them "
                    "(id is the job's name)"
                )
            data["name"] = job_id
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        tasks = [t for t in TASKS if getattr(self, t) is not None]
        if len(tasks) != 1:
            found = ", ".join(tasks) or "none"
            raise ValueError(
                f"a job needs exactly one task: command, python or image (found: {found})"
            )
        timeout, sla = self.timeout_td, self.sla
        if timeout is not None and sla is not None and timeout > sla:
            raise ValueError(
                f"timeout {self.timeout} is longer than the SLA (sla_minutes: {self.sla_minutes}); "
                "a run that uses it all has already breached"
            )
        if len(self.backoff) > self.retries:
            raise ValueError(
                f"backoff has {len(self.backoff)} steps but retries is {self.retries}; "
                "give at most one step per retry"
            )
        if self.max_deliver is not None and self.max_deliver < self.retries + 1:
            raise ValueError(
                f"max_deliver {self.max_deliver} leaves no room for {self.retries} retries "
                f"(it must be at least {self.retries + 1})"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The time zone the schedule is read in."""
        return ZoneInfo(self.timezone)

    @property
    def sla(self) -> timedelta | None:
        return None if self.sla_minutes is None else timedelta(minutes=self.sla_minutes)

    @property
    def timeout_td(self) -> timedelta | None:
        return None if self.timeout is None else parse_duration(self.timeout)

    @property
    def jitter_td(self) -> timedelta:
        return timedelta(0) if self.jitter is None else parse_duration(self.jitter)

    @property
    def catchup_td(self) -> timedelta | None:
        """The catch-up window; None means one period of the schedule."""
        return None if self.catchup_window is None else parse_duration(self.catchup_window)

    @property
    def backoff_td(self) -> tuple[timedelta, ...]:
        return tuple(parse_duration(step) for step in self.backoff)

    def run_at(self, scheduled_at: datetime, now: datetime) -> RunScheduled:
        """The work-queue event of the run filling the slot ``scheduled_at`` (its id is
        ``<name>@<scheduled_at UTC>``, so the slot is enqueued once however often it is asked)."""
        sla = self.sla
        return RunScheduled.create(
            occurred_at=now,
            namespace=self.namespace,
            job_id=self.name,
            run_id=run_id_for(self.name, scheduled_at),
            queue=self.queue,
            scheduled_at=scheduled_at,
            deadline=None if sla is None else scheduled_at + sla,
            task=self.task(),
        )

    def task(self) -> dict[str, Any]:
        """What the workers need to run one of its runs (``RunScheduled.task``)."""
        task: dict[str, Any] = {}
        if self.command is not None:
            task["command"] = list(self.command)
        if self.python is not None:
            task["python"] = self.python
        if self.image is not None:
            task["image"] = self.image
        if self.timeout_td is not None:
            task["timeout_s"] = self.timeout_td.total_seconds()
        task["retries"] = self.retries
        if self.backoff:
            task["backoff_s"] = [step.total_seconds() for step in self.backoff_td]
        if self.max_deliver is not None:
            task["max_deliver"] = self.max_deliver
        task["approval"] = self.approval
        return task
