"""SLOs: good and total events per minute, burn rates over the workbook's windows, and the
compliance badge.

Counters (``good``/``total``, or a histogram's ``le=threshold`` and ``le="+Inf"`` buckets) are
turned into increases per series (a counter reset starts again from 0; a series' first sample
only sets its base) and summed into one-minute buckets, so a 30-day window is 43,200 numbers
per SLO whatever the traffic. The burn rate over a window is its error ratio divided by the
error budget (1 - objective); a burn-rate alert holds when both its long and short windows burn
faster than its factor and the long window saw at least ``min_events`` events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from hms_contracts import AlertFiring, AlertResolved, SloStatusReported
from hms_contracts.config import BurnWindow, Slo

from .rules import BUCKET_SUFFIX, LabelKey, at, label_key
from .samples import LABELS, Sample
from .states import AlertState, Change, fingerprint, step

Role = Literal["good", "total", "bucket"]
Colour = Literal["green", "yellow", "red"]


@dataclass(frozen=True, slots=True)
class BurnAnnouncement:
    """A burn-rate alert that fired or resolved."""

    window: BurnWindow
    change: Change
    event: AlertFiring | AlertResolved


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an SLO stands now."""

    good: float
    total: float
    compliance: float | None
    budget_left: float
    status: Colour
    burning: tuple[str, ...]


def burn_rate(good: float, total: float, objective: float) -> float | None:
    """How many times faster than sustainable the budget burns; None without events."""
    if total <= 0:
        return None
    errors = max(total - good, 0.0) / total
    return errors / (1 - objective)


class SloTracker:
    """One SLO's minute buckets, counter bases and burn-rate alerts."""

    def __init__(self, slo: Slo) -> None:
        self.slo = slo
        self.minutes: deque[int] = deque()
        self.buckets: dict[int, list[float]] = {}
        self.bases: dict[tuple[str, LabelKey], float] = {}
        self.alerts: dict[str, AlertState] = {w.label: AlertState() for w in slo.burn_alerts}
        self.dirty_minutes: set[int] = set()
        self.dirty_bases: set[tuple[str, LabelKey]] = set()
        self.dirty_alerts: set[str] = set()
        self.keep_s = max(
            [slo.window_td.total_seconds(), *(w.long_td.total_seconds() for w in slo.burn_alerts)]
        )

    def series(self) -> dict[str, Role]:
        """The metric names the SLO reads, and what each is."""
        if self.slo.metric is not None:
            return {self.slo.metric + BUCKET_SUFFIX: "bucket"}
        return {self.slo.good or "": "good", self.slo.total or "": "total"}

    def add(self, role: Role, labels: Mapping[str, str], t: float, v: float) -> bool:
        """Take one counter sample; False when the SLO does not count it."""
        series = dict(labels)
        if role == "bucket":
            le = series.pop("le", None)
            if le is None:
                return False
            bound = float(le)
            if bound == math.inf:
                role = "total"
            elif self.slo.threshold is not None and math.isclose(bound, self.slo.threshold):
                role = "good"
            else:
                return False
        if not all(m.matches(series) for m in self.slo.matchers):
            return False
        key = (role, label_key(series))
        base = self.bases.get(key)
        self.bases[key] = v
        self.dirty_bases.add(key)
        if base is None:
            return True
        increase = v - base if v >= base else v
        if increase:
            self._count(int(t // 60), role, increase)
        return True

    def _count(self, minute: int, role: str, increase: float) -> None:
        bucket = self.buckets.get(minute)
        if bucket is None:
            bucket = self.buckets[minute] = [0.0, 0.0]
            if self.minutes and minute < self.minutes[-1]:
                self.minutes = deque(sorted((*self.minutes, minute)))
            else:
                self.minutes.append(minute)
        bucket[0 if role == "good" else 1] += increase
        self.dirty_minutes.add(minute)

    def restore(
        self,
        minutes: Iterable[tuple[int, float, float]],
        bases: Iterable[tuple[str, LabelKey, float]],
        alerts: Mapping[str, AlertState],
    ) -> None:
        for minute, good, total in sorted(minutes):
            self.buckets[minute] = [good, total]
            self.minutes.append(minute)
        for role, key, value in bases:
            self.bases[(role, key)] = value
        for label, state in alerts.items():
            if label in self.alerts:
                self.alerts[label] = state

    def sums(self, seconds: float, now: float) -> tuple[float, float]:
        """Good and total events in the trailing ``seconds`` (whole minutes)."""
        first = int((now - seconds) // 60) + 1
        good = total = 0.0
        for minute in reversed(self.minutes):
            if minute < first:
                break
            g, t = self.buckets[minute]
            good += g
            total += t
        return min(good, total), total

    def expire(self, now: float) -> list[int]:
        """Forget minutes no window needs; the minutes forgotten."""
        first = int((now - self.keep_s) // 60)
        gone = []
        while self.minutes and self.minutes[0] < first:
            minute = self.minutes.popleft()
            del self.buckets[minute]
            gone.append(minute)
        return gone

    def evaluate(self, now: float) -> tuple[list[BurnAnnouncement], Standing]:
        """The burn-rate alerts that fired or resolved, and the SLO's standing."""
        slo, out = self.slo, []
        self.expire(now)
        burning = []
        for w in slo.burn_alerts:
            good_l, total_l = self.sums(w.long_td.total_seconds(), now)
            good_s, total_s = self.sums(w.short_td.total_seconds(), now)
            long_rate = burn_rate(good_l, total_l, slo.objective)
            short_rate = burn_rate(good_s, total_s, slo.objective)
            holds = (
                total_l >= slo.min_events
                and long_rate is not None
                and short_rate is not None
                and long_rate > w.factor
                and short_rate > w.factor
            )
            state = self.alerts[w.label]
            before = state.phase
            change = step(state, holds, long_rate, now, for_s=0.0, keep_firing_s=0.0)
            if state.phase != before:
                self.dirty_alerts.add(w.label)
            if state.phase == "firing":
                burning.append(w.label)
            if change is not None:
                out.append(BurnAnnouncement(w, change, self._event(w, state, change, now)))
        good, total = self.sums(slo.window_td.total_seconds(), now)
        compliance = good / total if total > 0 else None
        budget_left = 1.0 if compliance is None else 1 - (1 - compliance) / (1 - slo.objective)
        colour: Colour = "green"
        if budget_left <= 0:
            colour = "red"
        elif burning or budget_left < slo.warn_budget:
            colour = "yellow"
        return out, Standing(good, total, compliance, budget_left, colour, tuple(burning))

    def rule_id(self, w: BurnWindow) -> str:
        return f"{self.slo.name}:burn_{w.long}_{w.short}"

    def _event(
        self, w: BurnWindow, state: AlertState, change: Change, now: float
    ) -> AlertFiring | AlertResolved:
        slo = self.slo
        labels = {**slo.labels, "slo": slo.name, "burn_window": f"{w.long}/{w.short}"}
        rule_id = self.rule_id(w)
        common: dict[str, Any] = {
            "namespace": slo.namespace,
            "occurred_at": at(now),
            "rule_id": rule_id,
            "metric": slo.watched_metric,
            "fingerprint": fingerprint(slo.namespace, rule_id, labels),
            "value": state.value,
            "operator": ">",
            "threshold": w.factor,
            "severity": w.severity,
            "labels": labels,
            "started_at": at(state.active_since if state.active_since is not None else now),
        }
        objective = f"{slo.objective * 100:g} %"
        if change == "fired":
            summary = (
                f"SLO {slo.name} ({objective}) burns its error budget {state.value:.1f}x too "
                f"fast over {w.long} and {w.short} (alert at {w.factor:g}x)"
            )
            return AlertFiring.create(**common, summary=summary, for_s=0.0)
        summary = f"SLO {slo.name} ({objective}) no longer burns {w.factor:g}x over {w.long}"
        return AlertResolved.create(**common, summary=summary, resolved_at=at(now))

    def status_event(self, standing: Standing, now: float) -> SloStatusReported:
        slo = self.slo
        share = (
            "no events yet"
            if standing.compliance is None
            else (f"{standing.compliance * 100:.2f} % good")
        )
        what = f"within {slo.threshold:g}" if slo.threshold is not None else f"{slo.good} of total"
        return SloStatusReported.create(
            namespace=slo.namespace,
            occurred_at=at(now),
            slo_id=slo.name,
            objective=slo.objective,
            window_s=slo.window_td.total_seconds(),
            good=standing.good,
            total=standing.total,
            compliance=standing.compliance,
            budget_left=standing.budget_left,
            status=standing.status,
            burning=standing.burning,
            summary=(
                f"{slo.name}: {share} ({what}) over {slo.window}, objective "
                f"{slo.objective * 100:g} %, {standing.budget_left * 100:.0f} % of the budget left"
            )[:1024],
        )


class SloBook:
    """Every SLO followed, and which metric names feed which."""

    def __init__(self) -> None:
        self.trackers: dict[str, SloTracker] = {}
        self._watch: dict[tuple[str, str], list[tuple[SloTracker, Role]]] = {}

    def set_slos(self, slos: Iterable[Slo]) -> list[SloTracker]:
        """Follow these SLOs; the trackers that are new (to be restored from the ledger)."""
        wanted = {s.key(): s for s in slos}
        for key in [k for k, t in self.trackers.items() if wanted.get(k) != t.slo]:
            del self.trackers[key]
        new = []
        for key, slo in wanted.items():
            if key not in self.trackers:
                self.trackers[key] = SloTracker(slo)
                new.append(self.trackers[key])
        self._watch = {}
        for tracker in self.trackers.values():
            for name, role in tracker.series().items():
                self._watch.setdefault((tracker.slo.namespace, name), []).append((tracker, role))
        return new

    def watched(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._watch

    def ingest(
        self, namespace: str, samples: Sequence[Sample], parse_time: Callable[[str], float]
    ) -> int:
        """Feed a batch's samples; how many were counted."""
        counted = 0
        watch = self._watch
        for sample in samples:
            targets = watch.get((namespace, sample.name))
            if not targets or not math.isfinite(sample.value):
                continue
            try:
                t = parse_time(sample.observed_at)
                labels = LABELS.decode(sample.labels)
            except (ValueError, msgspec.DecodeError):
                continue
            for tracker, role in targets:
                counted += tracker.add(role, labels, t, sample.value)
        return counted
