"""How many workers a pool should run, as KEDA and the HPA decide it; no I/O, ``now`` given.

Per input (the backlog, each metric trigger) the HPA's AverageValue rule: ``ceil(value /
target)`` workers, or the current count while ``value / (target * current)`` is within the
tolerance of 1; the largest wins, clamped to ``[min, max]``. Then the HPA's behaviour:
stabilization (the lowest recommendation of the scale-up window, the highest of the scale-down
window, bound the change) and step limits (workers or percent of the count at the start of the
period). KEDA's part: a pool at 0 wakes only when an input is active (above its activation
threshold), and goes back to 0 once nothing was active for ``idle_to_zero_after`` (with min 0).
An input that cannot be read holds the current count: never a jump to max, never to zero.
A playbook's request (a :class:`~.override.Floor`) is a floor under all of it while in force:
the pool neither stays at, nor goes to, fewer workers, whatever the stabilization or step limits.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from hms_contracts.config import ScalePolicy
from hms_contracts.scaling import ScaleAction

from .override import Floor

BACKLOG = "backlog"
#: how long recommendations and scale events are kept at most (longer windows are clipped)
HISTORY_S = 3600.0


@dataclass(frozen=True)
class Reading:
    """One input: its value (None when unreadable, with the error) against its target."""

    trigger: str
    value: float | None
    target: float
    activation: float = 0.0
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.value is not None and self.value > self.activation


@dataclass(frozen=True)
class Demand:
    """What one input asks for."""

    reading: Reading
    desired: int | None


@dataclass(frozen=True)
class Decision:
    """The count a pool should run, from what, and why."""

    current: int
    desired: int
    recommended: int
    demands: tuple[Demand, ...]
    reason: str
    degraded: bool = False
    floor: Floor | None = None

    @property
    def action(self) -> ScaleAction:
        if self.desired > self.current:
            return "scale_up"
        if self.desired < self.current:
            return "scale_down"
        return "hold"


def _fmt(value: float) -> str:
    return f"{value:g}"


def demand(reading: Reading, current: int, tolerance: float) -> Demand:
    """The HPA's AverageValue proposal for one input, within the tolerance of the target."""
    if reading.value is None:
        return Demand(reading, None)
    value = max(reading.value, 0.0)
    if current > 0:
        ratio = value / (reading.target * current)
        if abs(ratio - 1.0) <= tolerance:
            return Demand(reading, current)
    return Demand(reading, math.ceil(value / reading.target))


@dataclass
class Scaler:
    """One pool's decisions over time: the recommendations of its stabilization windows, its
    scale events for the step limits, and when an input was last active."""

    policy: ScalePolicy
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    ups: deque[tuple[float, int]] = field(default_factory=deque)
    downs: deque[tuple[float, int]] = field(default_factory=deque)
    last_active: float | None = None

    def decide(
        self, readings: list[Reading], current: int, now: float, floor: Floor | None = None
    ) -> Decision:
        """The decision for ``now`` (seconds on a monotonic clock) given the inputs, the
        workers running and a playbook's floor; record it, as if put into effect."""
        p = self.policy
        self._forget(now)
        demands = tuple(demand(r, current, p.tolerance) for r in readings)
        unread = [d.reading for d in demands if d.desired is None]
        if unread:
            errors = "; ".join(f"{r.trigger}: {r.error or 'unreadable'}" for r in unread)
            if floor is not None and floor.workers > current:
                # a request is not a reading: it is obeyed even while the inputs are not
                self.ups.append((now, floor.workers - current))
                return Decision(
                    current,
                    floor.workers,
                    floor.workers,
                    demands,
                    f"input unreadable ({errors}); {floor.reason}: floor {floor.workers}; "
                    f"{current} -> {floor.workers}",
                    degraded=True,
                    floor=floor,
                )
            return Decision(
                current,
                current,
                current,
                demands,
                f"input unreadable ({errors}); holding {current}",
                degraded=True,
                floor=floor,
            )
        active = [d for d in demands if d.reading.active]
        if self.last_active is None:
            # a scaler starts (or restarts) as if the current count had been recommended and
            # the pool active just now: no scale-down nor scale to zero before a whole window
            self.recommendations.append((now, current))
            self.last_active = now
        if active:
            self.last_active = now
        lowest = max(p.min, 1) if current > 0 else p.min
        largest = max(demands, key=lambda d: d.desired or 0) if demands else None
        raw = (largest.desired or 0) if largest else 0
        why = [self._explain(largest, current)] if largest else ["no inputs"]
        least = 0 if floor is None else floor.workers
        if current == 0 and not active and p.min == 0 and least == 0:
            why = [f"inactive ({self._inactive(demands)}); staying at 0"]
            why += [f"{floor.reason}: floor 0"] if floor is not None else []
            return self._finish(current, 0, 0, demands, why, now, floor)
        if current > 0 and not active and p.min == 0 and least == 0:
            idle = now - (self.last_active or now)
            if idle >= p.idle_to_zero_s:
                why = [
                    f"idle {idle:.0f}s >= idle_to_zero_after {p.idle_to_zero_after} "
                    f"({self._inactive(demands)}); scaling to zero"
                ]
                why += [f"{floor.reason}: floor 0"] if floor is not None else []
                self.recommendations.clear()
                return self._finish(current, 0, 0, demands, why, now, floor)
        recommended = min(max(raw, lowest, 1 if active else 0), p.max)
        if recommended != raw:
            why.append(f"clamped to {recommended} (min {p.min}, max {p.max})")
        if floor is not None:
            why.append(f"{floor.reason}: floor {floor.workers}")
            recommended = max(recommended, floor.workers)
        stabilized = self._stabilize(recommended, current, now)
        if stabilized != recommended:
            window = p.scale_down if stabilized > recommended else p.scale_up
            direction = "down" if stabilized > recommended else "up"
            why.append(
                f"scale-{direction} stabilization ({window.stabilization}) keeps {stabilized}"
            )
        desired = self._limit(stabilized, current, now)
        if desired != stabilized:
            rules = p.scale_up if desired > current else p.scale_down
            why.append(f"step limit per {rules.period} allows {desired}")
        if desired < least:
            why.append(f"the request's floor keeps {least}")
            desired = least
        return self._finish(current, desired, recommended, demands, why, now, floor)

    # --- the parts ------------------------------------------------------------------------

    def _explain(self, d: Demand, current: int) -> str:
        r = d.reading
        assert r.value is not None
        what = "backlog" if r.trigger == BACKLOG else r.trigger
        per = "per worker"
        exact = math.ceil(max(r.value, 0.0) / r.target)
        if d.desired == current and exact != current and current > 0:
            ratio = r.value / (r.target * current)
            return (
                f"{what} {_fmt(r.value)} / {_fmt(r.target)} {per}: ratio {ratio:.2f} "
                f"within tolerance {self.policy.tolerance:g} of {current}"
            )
        return f"{what} {_fmt(r.value)} / {_fmt(r.target)} {per} = {exact}"

    @staticmethod
    def _inactive(demands: tuple[Demand, ...]) -> str:
        return ", ".join(
            f"{d.reading.trigger} {_fmt(d.reading.value or 0.0)} <= {_fmt(d.reading.activation)}"
            for d in demands
        )

    def _stabilize(self, recommended: int, current: int, now: float) -> int:
        up_cut = now - self.policy.scale_up.stabilization_s
        down_cut = now - self.policy.scale_down.stabilization_s
        up = down = recommended
        for at, rec in self.recommendations:
            if at > up_cut:
                up = min(up, rec)
            if at > down_cut:
                down = max(down, rec)
        self.recommendations.append((now, recommended))
        result = current
        result = max(result, up)
        return min(result, down)

    def _limit(self, desired: int, current: int, now: float) -> int:
        if desired > current:
            rules = self.policy.scale_up
            start = current - self._changed(self.ups, rules.period_s, now)
            start += self._changed(self.downs, rules.period_s, now)
            limits = []
            if rules.workers is not None:
                limits.append(start + rules.workers)
            if rules.percent is not None:
                limits.append(math.ceil(start * (1 + rules.percent / 100)))
            if not limits:
                return desired
            cap = max(limits) if rules.select == "max" else min(limits)
            cap = max(cap, 1 if current == 0 else current)  # a pool at 0 may always wake
            return min(desired, cap)
        if desired < current:
            rules = self.policy.scale_down
            start = current + self._changed(self.downs, rules.period_s, now)
            start -= self._changed(self.ups, rules.period_s, now)
            limits = []
            if rules.workers is not None:
                limits.append(start - rules.workers)
            if rules.percent is not None:
                limits.append(math.floor(start * (1 - rules.percent / 100)))
            if not limits:
                return desired
            # the most change allowed (select max) is the lowest count
            floor = min(limits) if rules.select == "max" else max(limits)
            return max(desired, min(floor, current))
        return desired

    @staticmethod
    def _changed(events: deque[tuple[float, int]], period_s: float, now: float) -> int:
        """Workers added (or removed) in the period before ``now``: the HPA's period start is
        the current count less what was added, plus what was removed, within it."""
        return sum(n for at, n in events if at > now - period_s)

    def _finish(
        self,
        current: int,
        desired: int,
        recommended: int,
        demands: tuple[Demand, ...],
        why: list[str],
        now: float,
        floor: Floor | None = None,
    ) -> Decision:
        if desired > current:
            self.ups.append((now, desired - current))
        elif desired < current:
            self.downs.append((now, current - desired))
        why.append(f"{current} -> {desired}" if desired != current else f"holding {current}")
        return Decision(current, desired, recommended, demands, "; ".join(why), floor=floor)

    def _forget(self, now: float) -> None:
        for log in (self.recommendations, self.ups, self.downs):
            while log and log[0][0] < now - HISTORY_S:
                log.popleft()
