"""The ``slo`` kind: a service level objective and the burn-rate alerts that guard its budget.

"99 % of filings succeed within 2 s over 30 days" is written either from a Prometheus histogram
(the events within ``threshold`` are its bucket ``le=threshold``, all events its ``le="+Inf"``
bucket)::

    kind: slo
    name: filings_within_2s
    objective: 99          # percent (0.99 is read the same)
    window: 30d
    metric: filings.duration_seconds
    threshold: 2

or from two counters, ``good`` and ``total``. Alerts follow the multi-window, multi-burn-rate
recipe of the Google SRE workbook (as Sloth and Pyrra generate it): the budget burns ``factor``
times too fast over both a long and a short window. A rule with fewer than ``min_events``
events in its long window stays quiet (low traffic would page on one slow request).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hms_contracts.fields import Finite, Labels, MetricName, Severity

from .base import ConfigObject, Duration, kind, parse_duration
from .rules import Matchers


class BurnWindow(BaseModel):
    """One burn-rate alert: the budget burns more than ``factor`` times the sustainable pace
    over both ``long`` and ``short``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    long: Duration = Field(description="Long window, e.g. 1h")
    short: Duration = Field(description="Short window (resets the alert quickly), e.g. 5m")
    factor: float = Field(gt=0, le=10_000, allow_inf_nan=False, description="Burn rate, e.g. 14.4")
    severity: Severity = Field(default="critical", description="critical pages, warning tickets")

    @model_validator(mode="after")
    def _short_within_long(self) -> Self:
        if parse_duration(self.short) >= parse_duration(self.long):
            raise ValueError(f"short window {self.short} must be shorter than long {self.long}")
        return self

    @property
    def long_td(self) -> timedelta:
        return parse_duration(self.long)

    @property
    def short_td(self) -> timedelta:
        return parse_duration(self.short)

    @property
    def label(self) -> str:
        """``1h/5m 14.4x``."""
        return f"{self.long}/{self.short} {self.factor:g}x"


DEFAULT_BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow(long="1h", short="5m", factor=14.4, severity="critical"),
    BurnWindow(long="6h", short="30m", factor=6, severity="critical"),
    BurnWindow(long="1d", short="2h", factor=3, severity="warning"),
    BurnWindow(long="3d", short="6h", factor=1, severity="warning"),
)
"""The workbook's four: 2 % of a 30-day budget in 1 h, 5 % in 6 h (page), 10 % in a day, 10 %
in three days (ticket)."""


def _ratio(value: Any) -> Any:
    """``99``, ``"99%"``, ``"99 %"`` and ``0.99`` all mean 99 %."""
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"objective {value!r} must be a percentage such as 99 or 99.9%"
            ) from None
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 < value < 100:
        return value / 100
    return value


@kind
class Slo(ConfigObject):
    """A service level objective over a rolling window, with its burn-rate alerts."""

    kind: ClassVar[str] = "slo"

    objective: Annotated[float, BeforeValidator(_ratio)] = Field(
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="Share of events that must be good: 99 (percent) or 0.99",
    )
    window: Duration = Field(default="30d", description="Rolling compliance window")
    metric: MetricName | None = Field(
        default=None,
        description="A Prometheus histogram (its <metric>_bucket series): good events are "
        "those within threshold",
    )
    threshold: Finite | None = Field(
        default=None,
        description="With metric: the bucket bound (le) a good event falls under, in the "
        "metric's unit, e.g. 2 for 2 s; the histogram must have that bucket",
    )
    good: MetricName | None = Field(default=None, description="Counter of good events")
    total: MetricName | None = Field(default=None, description="Counter of all events")
    matchers: Matchers = Field(
        default=(), description="Which series count (label matchers); none: every series"
    )
    burn_alerts: tuple[BurnWindow, ...] = Field(
        default=DEFAULT_BURN_WINDOWS,
        max_length=8,
        description="Multi-window burn-rate alerts; default 1h/5m 14.4x, 6h/30m 6x (critical), "
        "1d/2h 3x, 3d/6h 1x (warning)",
    )
    min_events: int = Field(
        default=10,
        ge=0,
        description="A burn-rate alert needs at least this many events in its long window",
    )
    warn_budget: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="The badge turns yellow when less than this share of the budget is left",
    )
    labels: Labels = Field(default_factory=dict, description="Labels added to its alerts")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        histogram = self.metric is not None or self.threshold is not None
        counters = self.good is not None or self.total is not None
        if histogram == counters:
            raise ValueError(
                "an SLO reads either a histogram (metric and threshold) or two counters "
                "(good and total), exactly one of them"
            )
        if histogram and (self.metric is None or self.threshold is None):
            raise ValueError("a histogram SLO needs both metric and threshold")
        if counters and (self.good is None or self.total is None):
            raise ValueError("a counter SLO needs both good and total")
        return self

    @property
    def window_td(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def watched_metric(self) -> str:
        """The metric the SLO is about (its alerts name it)."""
        return self.metric or self.good or ""

    def document(self) -> dict[str, Any]:
        doc = super().document()
        if "matchers" in doc:
            doc["matchers"] = [str(m) for m in self.matchers]
        return doc
