"""Alerts (a rule fires and resolves) and SLA breaches (a promise was broken)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from . import subjects
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
    split_run_id,
)
from .subjects import Family

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
