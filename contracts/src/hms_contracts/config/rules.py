"""The parts of an alert rule that are not plain values: its condition, its label matchers, its
aggregation over the window and its ``no_data`` policy.

Everything here is parsed into data: an operator from an allow-list and a finite threshold, a
label name with one of Prometheus's four matcher operators. Nothing a user writes is ever
evaluated as code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from hms_contracts.alerts import Operator
from hms_contracts.fields import Finite, LabelName

from .base import parse_duration

# an operator from the allow-list, then a plain decimal number (ASCII digits only: no '1_000',
# no 'inf', no 'nan', nothing after it)
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_CONDITION = re.compile(rf"^\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*$")
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_ZERO = re.compile(r"^\s*0+(?:\.0*)?\s*[dhms]?\s*$")

Aggregation = Literal[
    "last", "avg", "max", "min", "sum", "count", "rate", "p50", "p90", "p95", "p99"
]
"""How a series' samples in the window become one value: the latest one, their mean, maximum,
minimum, sum or number, the per-second increase of a counter, or a quantile."""

QUANTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

NoData = Literal["ok", "alert", "keep_state"]
"""What a series without samples in its window means: the condition does not hold (ok), it
holds (alert: a silent source is itself the problem), or nothing changes (keep_state)."""


class Condition(BaseModel):
    """A comparison against a threshold, written as ``"> 1000"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operator: Operator = Field(description="One of >, >=, <, <=, ==, !=")
    threshold: Finite = Field(description="A finite number, in the metric's unit")

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``"> 1000"`` as a Condition; ValueError saying what a condition looks like."""
        if not isinstance(text, str) or len(text) > 64:
            raise ValueError(
                f"condition {str(text)[:64]!r} must be a short text: an operator and a number"
            )
        match = _CONDITION.fullmatch(text)
        if match is None:
            raise ValueError(
                f"condition {text!r} must be an operator (>, >=, <, <=, ==, !=) and a number, "
                "e.g. '> 1000'"
            )
        threshold = float(match[2])
        if not math.isfinite(threshold):
            raise ValueError(f"condition {text!r}: the threshold must be finite")
        return cls(operator=match[1], threshold=threshold)  # type: ignore[arg-type]

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the condition."""
        t, op = self.threshold, self.operator
        if op == ">":
            return value > t
        if op == ">=":
            return value >= t
        if op == "<":
            return value < t
        if op == "<=":
            return value <= t
        if op == "==":
            return value == t
        return value != t

    def __str__(self) -> str:
        return f"{self.operator} {self.threshold:g}"


def coerce_condition(value: Any) -> Any:
    return Condition.parse(value) if isinstance(value, str) else value


class Matcher(BaseModel):
    """A label matcher as Prometheus writes one: ``route="/claims"``, ``route!="/health"``,
    ``route=~"/claims/.*"``, ``route!~"/internal/.*"`` (regular expressions match the whole
    value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: LabelName = Field(description="Label name")
    op: Literal["=", "!=", "=~", "!~"] = Field(default="=", description="=, !=, =~ (regex) or !~")
    value: str = Field(max_length=1024, description="Value, or a regular expression for =~ !~")

    @field_validator("value")
    @classmethod
    def _regex_compiles(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("op") in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression ({exc})") from None
        return value

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f'matcher {text!r} must look like label="value" (operators =, !=, =~, !~)'
            )
        value = re.sub(r"\\(.)", r"\1", match[3])
        return cls(label=match[1], op=match[2], value=value)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series with ``labels`` matches (a missing label reads as empty)."""
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


def coerce_matchers(value: Any) -> Any:
    """Matchers as a list of strings (``route=~"/claims/.*"``) or models, or a mapping of
    label to value (equality)."""
    if isinstance(value, dict):
        return tuple(Matcher(label=k, op="=", value=v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(Matcher.parse(m) if isinstance(m, str) else m for m in value)
    return value


Matchers = Annotated[
    tuple[Matcher, ...],
    BeforeValidator(coerce_matchers),
    Field(max_length=32),
]


def parse_hold(text: str) -> timedelta:
    """A ``for`` or ``keep_firing_for`` duration, where 0 (``"0"``, ``"0s"``) is allowed."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text == 0:
        return timedelta(0)
    if isinstance(text, str) and _ZERO.fullmatch(text):
        return timedelta(0)
    return parse_duration(text)


def check_hold(value: str) -> str:
    parse_hold(value)
    return value


def as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
