"""Alerts (a rule fires and resolves), SLA breaches (a promise was broken) and the compliance
status of each SLO (for the dashboard)."""

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

BreachReason = Literal[
    "not_fired",
    "queue_wait",
    "run_overrun",
    "failed",
    "missed_catchup",
    "deadline_missed",
    "run_failed",
    "objective_violated",
]
"""Why a promise broke (:class:`SlaBreached`)."""


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

    reason: BreachReason = Field(
        description="What broke. A job run: not_fired (no run started in time: the scheduler "
        "or its queue is down), queue_wait (the run was enqueued but no worker took it in "
        "time), run_overrun (it is still running when it can no longer finish in time, or "
        "ran past its deadline), failed (it failed for good), missed_catchup (its slot was "
        "skipped after downtime); deadline_missed and run_failed are the older, coarser "
        "words for the same. An SLO: objective_violated"
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


class SloStatusReported(BusEvent):
    """Where an SLO stands over its window: compliance, error budget left and a colour for the
    dashboard's badge (green: on track; yellow: a burn-rate alert fires or under a quarter of
    the budget is left; red: the budget is spent). Published when the colour changes and at a
    steady pace otherwise."""

    family: ClassVar[Family] = subjects.SLO
    event_type: ClassVar[str | None] = "status"

    slo_id: Slug = Field(description="Name of the SLO, e.g. filings_within_2s")
    objective: Finite = Field(
        ge=0, le=1, description="Target ratio of good events, e.g. 0.99 (99 % within 2 s)"
    )
    window_s: NonNegative = Field(description="Compliance window, seconds (e.g. 30 days)")
    good: NonNegative = Field(description="Good events counted in the window")
    total: NonNegative = Field(description="Events counted in the window")
    compliance: Finite | None = Field(
        default=None, description="good / total in the window; None without events"
    )
    budget_left: Finite = Field(
        description="Share of the error budget left, 1 = untouched, 0 = spent, below 0 = overspent"
    )
    status: Literal["green", "yellow", "red"] = Field(description="The badge's colour")
    burning: tuple[Text, ...] = Field(
        default=(), description="Burn-rate alerts firing now, e.g. 1h/5m 14.4x"
    )
    summary: Text = Field(description="One line for humans, e.g. '99.42 % within 2 s (99 %)'")

    def natural_key(self) -> tuple[object, ...]:
        """One report per SLO and instant."""
        return (self.namespace, "slo", self.slo_id, self.occurred_at)
