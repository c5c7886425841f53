"""Incident lifecycle events: opened, updated, a playbook step, escalated, closed; and the
requests a playbook makes of others: notify, ticket, scale, pause or resume a queue.

Subjects: ``ops.incident.<ns>.opened|updated|step|escalated|notify|ticket|scale|queue`` and
``incident.closed.<ns>``.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from . import subjects
from .bus import BusEvent
from .fields import Fingerprint, Labels, LongText, NonNegative, Severity, Slug, Text, Token
from .subjects import Family

IncidentStatus = Literal[
    "open", "acknowledged", "mitigating", "resolved", "failed", "needs_attention"
]
"""open -> acknowledged -> mitigating -> resolved | failed | needs_attention."""

StepAction = Literal[
    "run",
    "notify",
    "ticket",
    "scale",
    "pause_queue",
    "resume_queue",
    "approval",
    "webhook",
    "python",
]


class _IncidentFacts(BusEvent):
    family: ClassVar[Family] = subjects.INCIDENT

    incident_id: Slug = Field(description="Id of the incident, stable for its lifetime")


class IncidentOpened(_IncidentFacts):
    """An alert or breach with no open incident opened one."""

    event_type: ClassVar[str | None] = "opened"

    title: Text = Field(description="What is wrong, one line")
    severity: Severity = Field(description="info, warning or critical")
    cause: Literal["alert", "sla_breach", "manual"] = Field(
        description="What opened it: an alert, an SLA breach, or a person"
    )
    cause_event_id: str | None = Field(
        default=None, min_length=1, description="event_id of the alert or breach that opened it"
    )
    fingerprint: Fingerprint | None = Field(
        default=None, description="Alert fingerprint the incident groups, when cause is alert"
    )
    playbook: Slug | None = Field(default=None, description="Playbook that will run, if any")
    labels: Labels = Field(default_factory=dict, description="Labels copied from the cause")

    def natural_key(self) -> tuple[object, ...]:
        """An incident opens once."""
        return (self.namespace, "incident", self.incident_id, self.event_type)


class IncidentUpdated(_IncidentFacts):
    """Something changed on an open incident: status, severity, a note, a re-fire."""

    event_type: ClassVar[str | None] = "updated"

    revision: int = Field(ge=1, description="Revision of the incident after this change")
    status: IncidentStatus = Field(description="Status after the change")
    severity: Severity = Field(description="Severity after the change")
    actor: Text = Field(description="Who changed it: a user, or a service name")
    note: Text | None = Field(default=None, description="What changed and why, for the timeline")

    def natural_key(self) -> tuple[object, ...]:
        """One update per revision."""
        return (self.namespace, "incident", self.incident_id, self.event_type, self.revision)


class IncidentStepRan(_IncidentFacts):
    """A playbook step started or ended; a command runs as an argv list (no shell), with
    capped output."""

    event_type: ClassVar[str | None] = "step"

    playbook: Slug = Field(description="Playbook the step belongs to")
    step_index: int = Field(ge=0, description="Position of the step in the playbook, from 0")
    attempt: int = Field(default=1, ge=1, description="Attempt of this step, 1 for the first")
    action: StepAction = Field(default="run", description="Kind of step")
    argv: tuple[Text, ...] = Field(
        min_length=1,
        description="Program and arguments as run (or the step as written), secrets masked",
    )
    status: Literal["started", "succeeded", "failed", "timed_out", "skipped", "dry_run"] = Field(
        description="started, then succeeded (exit 0), failed, timed_out (killed), skipped "
        "or dry_run (rendered, not run)"
    )
    exit_code: int | None = Field(
        default=None, description="Exit status; None when the step did not exit by itself"
    )
    output: LongText = Field(default="", description="Combined stdout and stderr, capped")
    output_truncated: bool = Field(default=False, description="Whether output was cut at the cap")
    duration_s: NonNegative = Field(description="Wall time of the step, seconds")

    @model_validator(mode="after")
    def _status_agrees_with_exit(self) -> Self:
        if self.status == "succeeded" and self.exit_code != 0:
            raise ValueError(f"status succeeded needs exit_code 0, got {self.exit_code}")
        return self

    def natural_key(self) -> tuple[object, ...]:
        """One start and one result per step attempt."""
        phase = "started" if self.status == "started" else "ended"
        key = (self.incident_id, self.event_type, self.step_index, self.attempt, phase)
        return (self.namespace, "incident", *key)


class IncidentEscalated(_IncidentFacts):
    """The incident went to people: an e-mail to on-call or a human-in-the-loop ticket."""

    event_type: ClassVar[str | None] = "escalated"

    level: int = Field(ge=1, description="Escalation level reached, 1 for the first")
    channel: Literal["email", "ticket"] = Field(description="How: email or ticket")
    target: Text = Field(description="E-mail address or ticket queue it went to")
    reference: Text | None = Field(
        default=None, description="Message id or ticket number, when the channel returned one"
    )

    def natural_key(self) -> tuple[object, ...]:
        """One escalation per level, channel and target."""
        key = (self.incident_id, self.event_type, self.level, self.channel, self.target)
        return (self.namespace, "incident", *key)


class IncidentClosed(BusEvent):
    """The incident is over; published on ``incident.closed.<ns>``."""

    family: ClassVar[Family] = subjects.INCIDENT_CLOSED

    incident_id: Slug = Field(description="Id of the incident")
    resolution: Literal["resolved", "auto_resolved", "false_positive", "duplicate", "failed"] = (
        Field(
            description="resolved (by people or a playbook), auto_resolved (the alert cleared), "
            "false_positive, duplicate, or failed (closed with its mitigation failed)"
        )
    )
    summary: Text | None = Field(default=None, description="How it ended, for the timeline")
    closed_by: Text = Field(description="Who closed it: a user, or a service name")
    opened_at: AwareDatetime = Field(description="When it was opened, for time-to-resolve")

    def natural_key(self) -> tuple[object, ...]:
        """An incident closes once."""
        return (self.namespace, "incident", self.incident_id, "closed")


class _PlaybookRequest(_IncidentFacts):
    playbook: Slug = Field(description="Playbook whose step asks")
    step_index: int = Field(ge=0, description="Position of the step in the playbook, from 0")

    def natural_key(self) -> tuple[object, ...]:
        """One request per incident and step (a re-run of the step dedupes)."""
        return (self.namespace, "incident", self.incident_id, self.event_type, self.step_index)


class NotifyRequested(_PlaybookRequest):
    """A playbook's ``notify`` step asks for a message to reach people; the escalation code
    delivers it (e-mail through the escalation policy). Published on
    ``ops.incident.<ns>.notify``."""

    event_type: ClassVar[str | None] = "notify"

    target: Text = Field(description="Who: an on-call rota, a policy or a person, e.g. oncall")
    message: Text = Field(description="What to tell them, secrets masked")
    title: Text = Field(description="The incident's title, for the subject line")
    severity: Severity = Field(description="The incident's severity")


class TicketFiled(_IncidentFacts):
    """A human-in-the-loop ticket for any ticketing system to take (also POSTed to the
    ticket webhook when one is set). Published on ``ops.incident.<ns>.ticket``."""

    event_type: ClassVar[str | None] = "ticket"

    ticket_id: Slug = Field(description="Stable id of the ticket: <incident_id>.<source>")
    summary: Text = Field(description="One line for the ticket")
    detail: LongText = Field(default="", description="What happened and what was done, masked")
    severity: Severity = Field(description="The incident's severity")
    source: Slug = Field(description="What filed it: step-<n>, sla_breach, needs_attention")
    labels: Labels = Field(default_factory=dict, description="The incident's labels")

    def natural_key(self) -> tuple[object, ...]:
        """One ticket per id."""
        return (self.namespace, "incident", self.incident_id, self.event_type, self.ticket_id)


class ScaleRequested(_PlaybookRequest):
    """A playbook's ``scale`` step asks the autoscaler to set a pool's size. Published on
    ``ops.incident.<ns>.scale``."""

    event_type: ClassVar[str | None] = "scale"

    pool: Token = Field(description="Worker pool to scale")
    replicas: int = Field(ge=0, le=10_000, description="Workers it should run")


class QueueControlRequested(_PlaybookRequest):
    """A playbook's ``pause_queue`` or ``resume_queue`` step asks the workers to stop or start
    handing out a queue's work. Published on ``ops.incident.<ns>.queue``."""

    event_type: ClassVar[str | None] = "queue"

    queue: Token = Field(description="Work queue")
    control: Literal["pause", "resume"] = Field(description="pause or resume")
