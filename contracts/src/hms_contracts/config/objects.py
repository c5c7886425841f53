"""The kinds the agency SDK declares: metrics, alert rules and playbooks.

``Condition`` lives in :mod:`.rules` with the other parts of a rule and is re-exported here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hms_contracts.fields import Labels, MetricName, Severity

from .base import ConfigObject, Duration, ObjectName, kind, parse_duration
from .incidents import Params, placeholders
from .rules import (
    QUANTILES,
    Aggregation,
    Condition,
    Matchers,
    NoData,
    as_text,
    check_hold,
    coerce_condition,
    parse_hold,
)
from .steps import NotifyStep, RunStep, Step, TicketStep, coerce_step

__all__ = ["Alert", "Condition", "Metric", "Playbook"]

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


def _check_opt_hold(value: str | None) -> str | None:
    return None if value is None else check_hold(value)


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
    """An alert rule: when ``metric`` meets ``condition``, the alert goes pending; once it has
    held for ``for``, it fires (Prometheus's semantics).

    The documents' form (``metric``, ``condition: "> 1000"``, ``window: 5m``) means that the
    latest value must stay over the threshold for five minutes: without an ``aggregation`` the
    ``window`` is also the ``for``. With an aggregation (``p99``, ``avg``, ``rate``, ...) the
    window is the range the samples are aggregated over and ``for`` defaults to 0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kind: ClassVar[str] = "alert"

    metric: MetricName = Field(description="Metric the rule watches")
    condition: Annotated[Condition, BeforeValidator(coerce_condition)] = Field(
        description="Comparison against a threshold, e.g. '> 1000'"
    )
    window: Duration = Field(
        default="1m",
        description="Range of samples each evaluation reads; without an aggregation, also how "
        "long the condition must hold (the documents' form)",
    )
    aggregation: Aggregation | None = Field(
        default=None,
        description="How the window's samples become one value: last, avg, max, min, sum, "
        "count, rate (per second, counters) or p50/p90/p95/p99; default last",
    )
    histogram: bool = Field(
        default=False,
        description="The metric is a Prometheus histogram: quantiles come from its "
        "<metric>_bucket series (label le), the increase of each bucket over the window",
    )
    for_: Annotated[str | None, BeforeValidator(as_text), AfterValidator(_check_opt_hold)] = Field(
        default=None,
        alias="for",
        description="How long the condition must hold before the alert fires (0 allowed); "
        "default: the window without an aggregation, else 0",
    )
    keep_firing_for: Annotated[str, BeforeValidator(as_text), AfterValidator(check_hold)] = Field(
        default="0s",
        description="How long a firing alert keeps firing after the condition stops holding",
    )
    matchers: Matchers = Field(
        default=(),
        description="Which series of the metric the rule watches: label matchers as Prometheus "
        'writes them (route="/claims", route=~"/claims/.*", env!="staging"), or a mapping of '
        "label to value; none: every series",
    )
    no_data: NoData = Field(
        default="ok",
        description="A series without samples in its window: ok (resolves), alert (fires "
        "after for) or keep_state (nothing changes)",
    )
    severity: Severity = Field(default="critical", description="info, warning or critical")
    labels: Labels = Field(
        default_factory=dict, description="Labels added to every alert of this rule"
    )
    playbook: ObjectName | Steps | None = Field(
        default=None,
        description="Steps to run when it fires: inline, or the name of a playbook object",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.histogram and self.aggregation not in QUANTILES:
            raise ValueError(
                f"histogram: a histogram rule needs a quantile aggregation "
                f"({', '.join(QUANTILES)}), not {self.aggregation!r}"
            )
        return self

    @property
    def window_td(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def aggregate(self) -> Aggregation:
        """The aggregation in force (``last`` when none is given)."""
        return self.aggregation or "last"

    @property
    def for_td(self) -> timedelta:
        """How long the condition must hold before the alert fires."""
        if self.for_ is not None:
            return parse_hold(self.for_)
        return self.window_td if self.aggregation is None else timedelta(0)

    @property
    def keep_firing_td(self) -> timedelta:
        return parse_hold(self.keep_firing_for)

    def document(self) -> dict[str, Any]:
        doc = super().document()
        doc["condition"] = str(self.condition)
        if "for_" in doc:
            doc["for"] = doc.pop("for_")
        if "matchers" in doc:
            doc["matchers"] = [str(m) for m in self.matchers]
        return doc
