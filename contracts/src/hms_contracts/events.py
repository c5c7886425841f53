"""The event catalogue: one frozen, extra-forbidding model per event on the bus.

Build events with ``Model.create(...)`` so the ``event_id`` is the deterministic one;
``event.subject()`` is where it is published; :func:`event_for_subject` maps back.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from . import subjects
from .base import SYSTEM_NAMESPACE
from .bus import BusEvent
from .fields import (
    Fingerprint,
    Finite,
    Labels,
    MetricName,
    NonNegative,
    Severity,
    Slug,
    Text,
    Token,
    split_run_id,
)
from .incidents import (
    GENESIS_HASH,
    AuditRecorded,
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStatus,
    IncidentStepRan,
    IncidentUpdated,
)
from .runs import (
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunScheduled,
    RunStarted,
    ScaleDecided,
    run_id_for,
)
from .subjects import Family, SubjectError

Health = Literal["ok", "degraded", "failing"]


class ServiceHeartbeat(BusEvent):
    """A service instance announces itself and its health (the service registry)."""

    family: ClassVar[Family] = subjects.HEARTBEAT

    service: str = Field(description="Service name, e.g. scheduler")
    version: str = Field(description="Version of the running service package")
    instance_id: str = Field(description="Unique id of this process, stable for its lifetime")
    started_at: AwareDatetime = Field(description="When this instance started")
    health: Health = Field(description="ok, degraded (working with reduced ability) or failing")
    http_url: str = Field(description="Base URL of the instance's /healthz and /metrics")
    pid: int = Field(description="Operating-system process id")
    host: str = Field(description="Host name the instance runs on")
    leader: bool | None = Field(
        default=None, description="For singletons, whether this instance holds the lease"
    )
    interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between this instance's heartbeats; stale after three of them",
    )

    def subject(self) -> str:
        """``ops.heartbeat.system.<service>``: heartbeats live in the system namespace."""
        return subjects.heartbeat(self.service)

    @classmethod
    def subject_pattern(cls, namespace: str | None = None) -> str:
        """Every service's heartbeat (the namespace is always ``system``)."""
        return cls.family.wildcard(SYSTEM_NAMESPACE).removesuffix(">") + "*"

    def natural_key(self) -> tuple[object, ...]:
        """One heartbeat per instance per instant (the kit's scheme)."""
        return ("hb", self.service, self.instance_id, self.occurred_at)


# --- metrics ---------------------------------------------------------------------------------


class MetricSample(BaseModel):
    """One measurement inside a MetricSampleBatch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: MetricName = Field(description="Dotted metric name, e.g. api.latency_p99")
    value: Finite = Field(description="Measured value (finite)")
    unit: str = Field(
        default="1",
        pattern=r"^[A-Za-z0-9_%/.]{1,32}$",
        description="Unit of the value, e.g. ms, s, bytes, ratio; 1 when dimensionless",
    )
    labels: Labels = Field(default_factory=dict, description="Label names and values")
    observed_at: AwareDatetime = Field(description="When the value was measured")


class MetricSampleBatch(BusEvent):
    """A batch of samples from one source (hot path: 100-1000 samples per message)."""

    family: ClassVar[Family] = subjects.METRIC

    source: Token = Field(description="Who measured: scrape target or pushing client (a token)")
    origin: Literal["scrape", "push"] = Field(
        description="scrape (collector read /metrics) or push (SDK or client sent the samples)"
    )
    samples: tuple[MetricSample, ...] = Field(
        min_length=1, max_length=10_000, description="The samples, in observation order"
    )

    def routing_token(self) -> str:
        """``ops.metric.<ns>.<source>``."""
        return self.source

    def natural_key(self) -> tuple[object, ...]:
        """The same samples from the same source are the same batch."""
        body = json.dumps(
            [s.model_dump(mode="json") for s in self.samples], sort_keys=True, separators=(",", ":")
        )
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        return (self.namespace, "metrics", self.source, digest)


# --- alerts and breaches ---------------------------------------------------------------------

Operator = Literal[">", ">=", "<", "<=", "==", "!="]


class _AlertFacts(BusEvent):
    family: ClassVar[Family] = subjects.ALERT

    rule_id: Slug = Field(description="Id of the rule, e.g. api_latency_p99_high")
    metric: MetricName = Field(description="Metric the rule watches")
    fingerprint: Fingerprint = Field(
        description="Identity of the alert (hash of namespace, rule and labels); "
        "the same alert keeps the same fingerprint across firings"
    )
    value: Finite = Field(description="Observed value that decided the state")
    operator: Operator = Field(description="Comparison of value against threshold")
    threshold: Finite = Field(description="Threshold of the rule, in the metric's unit")
    severity: Severity = Field(description="info, warning or critical")
    summary: Text = Field(description="One line for humans, e.g. 'p99 latency 1450 ms > 1000 ms'")
    labels: Labels = Field(default_factory=dict, description="Labels of the alerting series")
    started_at: AwareDatetime = Field(description="When the condition began to hold")

    def natural_key(self) -> tuple[object, ...]:
        """One firing and one resolution per alert episode."""
        return (self.namespace, "alert", self.fingerprint, self.started_at, self.event_type)


class AlertFiring(_AlertFacts):
    """A rule's condition has held for its ``for`` duration: the alert fires."""

    event_type: ClassVar[str | None] = "firing"

    for_s: NonNegative = Field(default=0.0, description="How long it had to hold, seconds")


class AlertResolved(_AlertFacts):
    """A firing alert's condition no longer holds."""

    event_type: ClassVar[str | None] = "resolved"

    resolved_at: AwareDatetime = Field(description="When the condition stopped holding")


class SlaBreached(BusEvent):
    """A promise was broken: a run missed its deadline or failed, or an SLO was violated."""

    family: ClassVar[Family] = subjects.SLA_BREACH

    reason: Literal["deadline_missed", "objective_violated", "run_failed"] = Field(
        description="deadline_missed and run_failed concern a job run; objective_violated an SLO"
    )
    job_id: Slug | None = Field(default=None, description="Job whose run broke its SLA")
    run_id: str | None = Field(default=None, description="Run that broke it, job_id@scheduled_at")
    slo_id: Slug | None = Field(default=None, description="SLO that was violated")
    deadline: AwareDatetime | None = Field(
        default=None, description="Deadline that was missed (deadline_missed, run_failed)"
    )
    objective: Finite | None = Field(
        default=None, description="Target of the SLO, e.g. 0.99 of filings within 2 s"
    )
    observed: Finite | None = Field(default=None, description="What the SLO measured instead")
    severity: Severity = Field(default="critical", description="info, warning or critical")
    detail: Text = Field(description="What happened, for humans and the ticket")

    @model_validator(mode="after")
    def _identifies_what_broke(self) -> Self:
        if self.reason == "objective_violated":
            if self.slo_id is None:
                raise ValueError("slo_id is required when reason is objective_violated")
        elif self.job_id is None or self.run_id is None:
            raise ValueError(f"job_id and run_id are required when reason is {self.reason}")
        elif split_run_id(self.run_id)[0] != self.job_id:
            raise ValueError(f"run_id {self.run_id!r} does not belong to job {self.job_id!r}")
        return self

    def natural_key(self) -> tuple[object, ...]:
        """One breach per run and reason, or per SLO and evaluation instant."""
        what = self.slo_id if self.reason == "objective_violated" else self.run_id
        return (self.namespace, "breach", self.reason, what, self.deadline or self.occurred_at)


# --- the catalogue ---------------------------------------------------------------------------

CATALOGUE: tuple[type[BusEvent], ...] = (
    ServiceHeartbeat,
    MetricSampleBatch,
    AlertFiring,
    AlertResolved,
    SlaBreached,
    IncidentOpened,
    IncidentUpdated,
    IncidentStepRan,
    IncidentEscalated,
    IncidentClosed,
    RunScheduled,
    RunStarted,
    RunProgressed,
    RunCompleted,
    RunFailed,
    RunDeadLettered,
    ScaleDecided,
    AuditRecorded,
)
"""Every event model on the bus, in documentation order."""


def event_for_subject(subject: str) -> type[BusEvent] | None:
    """The event model published on ``subject``, or None when no model is (e.g. ``dlq.>``)."""
    for model in CATALOGUE:
        if subjects.matches(model.subject_pattern(), subject):
            return model
    return None


def decode(subject: str, payload: bytes | str) -> BusEvent:
    """Validate a message received on ``subject`` into its event.

    Raises SubjectError when no event lives on the subject or the payload names another
    subject (wrong namespace or routing token), and pydantic's ValidationError when the
    payload is invalid; either way the message belongs on the dead-letter subject.
    """
    model = event_for_subject(subject)
    if model is None:
        raise SubjectError(f"no event in the catalogue is published on {subject!r}")
    event = model.model_validate_json(payload)
    if event.subject() != subject:
        raise SubjectError(f"{model.__name__} for {event.subject()!r} arrived on {subject!r}")
    return event


__all__ = [
    "CATALOGUE",
    "GENESIS_HASH",
    "AlertFiring",
    "AlertResolved",
    "AuditRecorded",
    "BusEvent",
    "Health",
    "IncidentClosed",
    "IncidentEscalated",
    "IncidentOpened",
    "IncidentStatus",
    "IncidentStepRan",
    "IncidentUpdated",
    "MetricSample",
    "MetricSampleBatch",
    "Operator",
    "RunCompleted",
    "RunDeadLettered",
    "RunFailed",
    "RunProgressed",
    "RunScheduled",
    "RunStarted",
    "ScaleDecided",
    "ServiceHeartbeat",
    "SlaBreached",
    "decode",
    "event_for_subject",
    "run_id_for",
]
