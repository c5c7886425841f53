"""How figures read, in plain English, and the colour of a promise kept or broken."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Colour = Literal["green", "yellow", "red", "grey"]

_HOLDS = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
_WORDS = {
    "<=": "at most",
    "<": "under",
    ">=": "at least",
    ">": "over",
    "==": "exactly",
    "!=": "other than",
}


@dataclass(frozen=True)
class Compliance:
    """An objective measured over samples: the share of good samples against a target."""

    name: str
    metric: str
    good: int
    total: int
    target: float  # e.g. 0.99
    operator: str  # the good side, e.g. "<="
    threshold: float
    unit: str
    breached: bool = False  # an SLA breach event says so, whatever the samples

    @property
    def ratio(self) -> float | None:
        return None if self.total == 0 else self.good / self.total

    @property
    def colour(self) -> Colour:
        return badge_colour(self.ratio, self.target, self.breached)

    @property
    def verdict(self) -> str:
        return {
            "green": "meets the target",
            "yellow": "at risk: close to the target",
            "red": "misses the target",
            "grey": "no data yet",
        }[self.colour]

    def sentence(self) -> str:
        """E.g. '99.3 % of api.latency_p99 samples at most 1000 ms — meets the target (99 %)'."""
        bound = f"{_WORDS.get(self.operator, self.operator)} {fmt(self.threshold)} {self.unit}"
        target = f"target {pct(self.target)}"
        if self.ratio is None:
            return f"No {self.metric} samples yet ({target}, {bound})"
        return f"{pct(self.ratio)} of {self.metric} samples {bound} — {self.verdict} ({target})"

    def short(self) -> str:
        return "no data" if self.ratio is None else pct(self.ratio)

    @property
    def budget_left(self) -> float | None:
        return None

    @property
    def source(self) -> str:
        return "alert samples"


_SLO_VERDICTS = {
    "green": "meets the target",
    "yellow": "meets the target, budget running low",
    "red": "misses the target",
    "grey": "no report yet",
}


@dataclass(frozen=True)
class SloState:
    """A registered SLO as its evaluator last reported it (SloStatusReported): the colour,
    compliance and budget are the evaluator's, the words the console's."""

    name: str
    metric: str
    what: str  # e.g. "filings.duration_seconds events within 2 s"
    target: float
    window: str  # e.g. "30d"
    good: float = 0.0
    total: float = 0.0
    reported: float | None = None  # compliance as reported; None without events
    budget: float | None = None  # budget left as reported; None before any report
    status: Colour = "grey"
    burning: tuple[str, ...] = ()
    reported_at: str | None = None

    @property
    def ratio(self) -> float | None:
        return self.reported

    @property
    def colour(self) -> Colour:
        return self.status

    @property
    def breached(self) -> bool:
        return self.status == "red"

    @property
    def budget_left(self) -> float | None:
        return self.budget

    @property
    def source(self) -> str:
        return "slo status"

    @property
    def verdict(self) -> str:
        return _SLO_VERDICTS[self.colour]

    def sentence(self) -> str:
        """E.g. '99.3 % of filings.duration_seconds events within 2 s over the last 30d —
        meets the target (99 %); 70 % of the error budget left'."""
        target = f"target {pct(self.target)}"
        if self.reported_at is None:
            return f"No report yet for {self.what} over the last {self.window} ({target})"
        if self.ratio is None:
            return f"No {self.what.split(' ')[0]} events over the last {self.window} ({target})"
        text = (
            f"{pct(self.ratio)} of {self.what} over the last {self.window} — "
            f"{self.verdict} ({target})"
        )
        if self.budget is not None:
            text += f"; {budget_words(self.budget)}"
        if self.burning:
            text += f"; burning fast: {', '.join(self.burning)}"
        return text

    def short(self) -> str:
        return "no data" if self.ratio is None else pct(self.ratio)


def budget_words(left: float) -> str:
    """0.7 -> '70 % of the error budget left'; below 0: overspent."""
    if left < 0:
        return f"error budget overspent by {pct(-left)}"
    return f"{pct(min(left, 1.0))} of the error budget left"


def good_side(operator: str) -> str:
    """The comparison a good sample meets when an alert fires on ``operator``."""
    return _HOLDS.get(operator, "<=")


def meets(value: float, operator: str, threshold: float) -> bool:
    return {
        "<=": value <= threshold,
        "<": value < threshold,
        ">=": value >= threshold,
        ">": value > threshold,
        "==": value == threshold,
        "!=": value != threshold,
    }[operator]


def badge_colour(ratio: float | None, target: float, breached: bool = False) -> Colour:
    """Red when breached or under target; yellow when within a tenth of the error budget of
    it; green otherwise; grey without data."""
    if breached:
        return "red"
    if ratio is None:
        return "grey"
    if ratio < target:
        return "red"
    budget = 1.0 - target
    return "yellow" if ratio - target < budget * 0.1 else "green"


def pct(ratio: float) -> str:
    """0.99312 -> '99.3 %' (never rounds up to 100 % unless it is)."""
    value = math.floor(ratio * 1000) / 10
    return f"{value:g} %"


def fmt(value: float) -> str:
    return f"{value:g}"
