"""The kinds the agency SDK declares: metrics, alert rules and playbooks."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from hms_contracts.alerts import Operator
from hms_contracts.fields import Finite, Labels, MetricName, Severity

from .base import ConfigObject, Duration, ObjectName, kind, parse_duration
from .incidents import Params, placeholders
from .steps import NotifyStep, RunStep, Step, TicketStep, coerce_step

_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")

Steps = Annotated[
    tuple[Annotated[Step, BeforeValidator(coerce_step)], ...],
    Field(min_length=1, max_length=64, description="Ordered steps; the first failure stops"),
]


@kind
class Metric(ConfigObject):
    """A metric an agency system exposes: scraped from a URL, or pushed through the SDK."""

    kind: ClassVar[str] = "metric"

    name: MetricName = Field(description="Dotted metric name, e.g. api.latency_p99")
    unit: str = Field(
        default="1",
        pattern=r"^[A-Za-z0-9_%/.]{1,32}$",
        description="Unit of the values, e.g. ms, s, bytes, ratio; 1 when dimensionless",
    )
    source: str = Field(
        default="push",
        description="push (the SDK sends samples) or the http(s) URL the collector scrapes",
    )
    scrape_interval: Duration = Field(default="1m", description="How often to scrape the source")
    labels: Labels = Field(default_factory=dict, description="Labels every sample carries")

    @field_validator("source")
    @classmethod
    def _source_is_push_or_url(cls, value: str) -> str:
        if value != "push" and not _URL.fullmatch(value):
            raise ValueError(f"source {value!r} must be 'push' or an http(s) URL")
        return value


class Condition(BaseModel):
    """A comparison against a threshold, written as ``"> 1000"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operator: Operator = Field(description="One of >, >=, <, <=, ==, !=")
    threshold: Finite = Field(description="A finite number, in the metric's unit")

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.fullmatch(text)
        if match is None:
            raise ValueError(
                f"condition {text!r} must be an operator (>, >=, <, <=, ==, !=) and a number, "
                "e.g. '> 1000'"
            )
        try:
            threshold = float(match[2])
        except ValueError:
            raise ValueError(
                f"condition {text!r}: threshold {match[2]!r} is not a number"
            ) from None
        if not math.isfinite(threshold):
            raise ValueError(f"condition {text!r}: the threshold must be finite")
        return cls(operator=match[1], threshold=threshold)  # type: ignore[arg-type]

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the condition."""
        t = self.threshold
        return {
            ">": value > t,
            ">=": value >= t,
            "<": value < t,
            "<=": value <= t,
            "==": value == t,
            "!=": value != t,
        }[self.operator]

    def __str__(self) -> str:
        return f"{self.operator} {self.threshold:g}"


def _condition(value: Any) -> Any:
    return Condition.parse(value) if isinstance(value, str) else value


@kind
class Playbook(ConfigObject):
    """Ordered steps run when an alert fires; the first failing step stops the run."""

    kind: ClassVar[str] = "playbook"

    steps: Steps
    params: Params = Field(
        default_factory=dict,
        description="Typed parameters taken from the alert's labels, used as {{ name }} in steps",
    )
    max_runs_per_hour: int = Field(
        default=6, ge=1, le=1000, description="Blast radius: most runs per target in any hour"
    )

    @model_validator(mode="after")
    def _placeholders_declared(self) -> Playbook:
        for i, step in enumerate(self.steps):
            for text in step_texts(step):
                used, _ = placeholders(text)
                if unknown := sorted(used - set(self.params)):
                    raise ValueError(
                        f"steps[{i}]: {{{{ {unknown[0]} }}}} is not a declared parameter; "
                        f"declared: {', '.join(sorted(self.params)) or 'none'}"
                    )
        return self

    def target(self, values: dict[str, str]) -> str:
        """What the blast-radius limit counts runs of: the playbook and its parameters."""
        return self.name + "".join(f"|{k}={values[k]}" for k in sorted(values))


def step_texts(step: Step) -> tuple[str, ...]:
    """The texts of a step that may hold placeholders."""
    if isinstance(step, RunStep):
        return step.argv
    if isinstance(step, NotifyStep):
        return (step.message,)
    if isinstance(step, TicketStep):
        return (step.summary,)
    return ()


@kind
class Alert(ConfigObject):
    """An alert rule: when ``metric`` meets ``condition`` for ``window``, the alert fires."""

    kind: ClassVar[str] = "alert"

    metric: MetricName = Field(description="Metric the rule watches")
    condition: Annotated[Condition, BeforeValidator(_condition)] = Field(
        description="Comparison against a threshold, e.g. '> 1000'"
    )
    window: Duration = Field(default="1m", description="How long the condition must hold")
    severity: Severity = Field(default="critical", description="info, warning or critical")
    playbook: ObjectName | Steps | None = Field(
        default=None,
        description="Steps to run when it fires: inline, or the name of a playbook object",
    )

    @property
    def window_td(self) -> timedelta:
        return parse_duration(self.window)

    def document(self) -> dict[str, Any]:
        doc = super().document()
        doc["condition"] = str(self.condition)
        return doc
