"""Alert rules over streaming windows: which series each rule watches, their windows, and the
alerts that fire and resolve.

:class:`RuleEngine` holds the rules (kind ``alert``) and, for every series a rule matches, a
*binding*: the series' window and its alert state. A sample batch updates only the windows of
series that rules use (a metric no rule names costs one dict lookup per sample) and evaluates
the bindings it touched, so a breach is known as its sample arrives; :meth:`RuleEngine.tick`
evaluates every binding, which drives ``for`` and ``keep_firing_for`` timers and no-data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hms_contracts import AlertFiring, AlertResolved
from hms_contracts.config import Alert
from hms_contracts.config.rules import QUANTILES

from .states import AlertState, Change, fingerprint, step
from .windows import HistogramWindow, Window, bucket_bound

LabelKey = tuple[tuple[str, str], ...]
BUCKET_SUFFIX = "_bucket"


def label_key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items())) if labels else ()


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(slots=True, eq=False)
class Binding:
    """One rule on one series: its window and its alert."""

    rule: CompiledRule
    labels: dict[str, str]
    window: Window | HistogramWindow
    state: AlertState
    fingerprint: str
    placeholder: bool = False  # the rule's no-data stand-in when it has no series at all

    def value(self, now: float) -> float | None:
        return self.window.value(now)


@dataclass(slots=True, eq=False)
class CompiledRule:
    """An alert rule made ready to evaluate."""

    alert: Alert
    span: float
    for_s: float
    keep_s: float
    series_name: str
    bindings: dict[LabelKey, Binding] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.alert.key()

    @classmethod
    def of(cls, alert: Alert) -> CompiledRule:
        name = alert.metric + BUCKET_SUFFIX if alert.histogram else alert.metric
        return cls(
            alert,
            alert.window_td.total_seconds(),
            alert.for_td.total_seconds(),
            alert.keep_firing_td.total_seconds(),
            name,
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(dict(labels)) for m in self.alert.matchers)

    def new_window(self) -> Window | HistogramWindow:
        if self.alert.histogram:
            return HistogramWindow(self.span, self.alert.aggregate)
        return Window(self.span, self.alert.aggregate)

    def binding(self, key: LabelKey, labels: dict[str, str], state: AlertState) -> Binding:
        found = self.bindings.get(key)
        if found is None:
            fp = fingerprint(self.alert.namespace, self.alert.name, labels)
            found = Binding(self, labels, self.new_window(), state, fp, placeholder=False)
            self.bindings[key] = found
        return found


@dataclass(frozen=True, slots=True)
class Announcement:
    """An alert that fired or resolved, and the event that says so."""

    binding: Binding
    change: Change
    event: AlertFiring | AlertResolved


@dataclass(frozen=True, slots=True)
class StoredState:
    """An alert's state as the ledger keeps it."""

    rule_key: str
    fingerprint: str
    labels: dict[str, str]
    state: AlertState


class RuleEngine:
    """Every rule, its bindings, and the samples that feed them."""

    def __init__(self) -> None:
        self.rules: dict[str, CompiledRule] = {}
        self._watch: dict[tuple[str, str], list[CompiledRule]] = {}
        # (namespace, series name, labels) -> [(binding, bucket bound or None)]
        self._series: dict[tuple[str, str, LabelKey], list[tuple[Binding, float | None]]] = {}
        self._restored: dict[tuple[str, str], StoredState] = {}
        self._times: dict[str, float] = {}
        self.dirty: set[Binding] = set()
        self.dropped = 0
        self.ingested = 0

    # --- rules ------------------------------------------------------------------------------

    def watched(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._watch

    def set_rules(self, alerts: Iterable[Alert], now: float) -> list[Announcement]:
        """Follow these rules from now on. A rule whose definition is unchanged keeps its
        windows and alerts; a changed one starts again (its alerts keep their state); a removed
        one's firing alerts resolve."""
        wanted = {a.key(): a for a in alerts}
        out: list[Announcement] = []
        if wanted.keys() == self.rules.keys() and all(
            r.alert is wanted[k] or r.alert == wanted[k] for k, r in self.rules.items()
        ):
            return out  # nothing changed: keep the series index
        for key, old in list(self.rules.items()):
            if wanted.get(key) == old.alert:
                continue
            del self.rules[key]
            for b in old.bindings.values():
                if key in wanted:  # changed: carry the state over
                    self._restored[(key, b.fingerprint)] = StoredState(
                        key, b.fingerprint, b.labels, b.state
                    )
                elif b.state.phase == "firing":
                    b.state.phase = "inactive"
                    self.dirty.add(b)
                    out.append(self._announce(b, "resolved", now))
        for key, alert in wanted.items():
            if key not in self.rules:
                self.rules[key] = CompiledRule.of(alert)
        self._reindex()
        return out

    def _reindex(self) -> None:
        self._watch = {}
        for rule in self.rules.values():
            self._watch.setdefault((rule.alert.namespace, rule.series_name), []).append(rule)
        self._series.clear()
        for rule in self.rules.values():
            for stored in [s for (k, _), s in self._restored.items() if k == rule.key]:
                del self._restored[(rule.key, stored.fingerprint)]
                b = rule.binding(label_key(stored.labels), dict(stored.labels), stored.state)
                if not stored.labels and rule.alert.no_data == "alert":
                    b.placeholder = True
            if rule.alert.no_data == "alert" and not rule.bindings:
                b = rule.binding((), {}, AlertState())
                b.placeholder = True

    def restore(self, stored: Iterable[StoredState]) -> None:
        """Take back the alert states of a previous run (before ``set_rules``)."""
        for s in stored:
            self._restored[(s.rule_key, s.fingerprint)] = s
        self._reindex()

    def states(self, bindings: Iterable[Binding]) -> list[StoredState]:
        return [
            StoredState(b.rule.key, b.fingerprint, b.labels, b.state.copy())
            for b in bindings
            if b.rule.key in self.rules
        ]

    # --- samples ----------------------------------------------------------------------------

    def parse_time(self, text: str) -> float:
        """POSIX seconds of an ISO 8601 time with its zone (cached: a batch's samples
        share a few)."""
        t = self._times.get(text)
        if t is None:
            stamp = datetime.fromisoformat(text)
            if stamp.tzinfo is None:
                raise ValueError(f"observed_at {text!r} has no time zone")
            t = stamp.timestamp()
            if len(self._times) > 4096:
                self._times.clear()
            self._times[text] = t
        return t

    def _bindings_of(
        self, namespace: str, name: str, key: LabelKey, labels: Mapping[str, str]
    ) -> list[tuple[Binding, float | None]]:
        found: list[tuple[Binding, float | None]] = []
        for rule in self._watch.get((namespace, name), ()):
            bound: float | None = None
            series = dict(labels)
            if rule.alert.histogram:
                le = series.pop("le", None)
                if le is None:
                    continue
                bound = bucket_bound(le)
            if not rule.matches(series):
                continue
            b = rule.binding(label_key(series), series, AlertState())
            b.placeholder = False  # a series without labels is real data, not a stand-in
            found.append((b, bound))
        self._series[(namespace, name, key)] = found
        return found

    def ingest(self, namespace: str, samples: Sequence[Any]) -> set[Binding]:
        """Feed one batch's samples (``MetricSample`` documents: name, value, labels,
        observed_at) to the windows of the series rules use; the bindings touched. Samples
        of metrics no rule names are skipped unread; an unreadable sample of a watched one is
        counted in ``dropped``."""
        touched: set[Binding] = set()
        watch, series_map = self._watch, self._series
        for sample in samples:
            try:
                name = sample["name"]
                if (namespace, name) not in watch:
                    continue
                labels = sample.get("labels") or {}
                key = tuple(sorted(labels.items())) if labels else ()
                targets = series_map.get((namespace, name, key))
                if targets is None:
                    targets = self._bindings_of(namespace, name, key, labels)
                if not targets:
                    continue
                v = sample["value"]
                if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                    raise ValueError(f"value {v!r} is not a finite number")
                t = self.parse_time(sample["observed_at"])
            except (KeyError, TypeError, ValueError, AttributeError):
                self.dropped += 1
                continue
            self.ingested += 1
            for b, bound in targets:
                w = b.window
                if isinstance(w, Window):
                    ok = w.add(t, v)
                else:
                    ok = bound is not None and w.add_bucket(bound, t, v)
                if ok:
                    touched.add(b)
                else:
                    self.dropped += 1
        return touched

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, bindings: Iterable[Binding], now: float) -> list[Announcement]:
        """Evaluate these bindings at ``now``; the alerts that fired or resolved."""
        out: list[Announcement] = []
        for b in bindings:
            rule = b.rule
            alert = rule.alert
            if b.placeholder:
                has_data = any(
                    o.value(now) is not None for o in rule.bindings.values() if o is not b
                )
                value: float | None = None if has_data else 0.0
                holds: bool | None = not has_data
            else:
                value = b.value(now)
                if value is None:
                    policy = alert.no_data
                    holds = False if policy == "ok" else (True if policy == "alert" else None)
                else:
                    holds = alert.condition.holds(value)
            before = (b.state.phase, b.state.active_since)
            change = step(b.state, holds, value, now, for_s=rule.for_s, keep_firing_s=rule.keep_s)
            if (b.state.phase, b.state.active_since) != before or (
                holds and b.state.phase == "firing" and rule.keep_s
            ):
                self.dirty.add(b)
            if change is not None:
                out.append(self._announce(b, change, now))
        return out

    def tick(self, now: float) -> list[Announcement]:
        """Evaluate every binding: ``for`` timers, ``keep_firing_for``, no-data."""
        return self.evaluate(list(self.bindings()), now)

    def bindings(self) -> Iterator[Binding]:
        for rule in self.rules.values():
            yield from rule.bindings.values()

    def drain_dirty(self) -> list[StoredState]:
        """The states changed since the last call, to be stored."""
        dirty, self.dirty = self.dirty, set()
        return self.states(dirty)

    def _announce(self, b: Binding, change: Change, now: float) -> Announcement:
        alert, state = b.rule.alert, b.state
        labels = {**b.labels, **alert.labels}
        value = state.value
        what = "no data" if b.placeholder else f"{alert.aggregate} {value:g}"
        common: dict[str, Any] = {
            "namespace": alert.namespace,
            "occurred_at": at(now),
            "rule_id": alert.name,
            "metric": alert.metric,
            "fingerprint": b.fingerprint,
            "value": value,
            "operator": alert.condition.operator,
            "threshold": alert.condition.threshold,
            "severity": alert.severity,
            "labels": labels,
            "started_at": at(state.active_since if state.active_since is not None else now),
        }
        unit = f" over {alert.window}" if alert.aggregate in (*QUANTILES, "avg", "rate") else ""
        if change == "fired":
            summary = f"{alert.metric} {what}{unit} {alert.condition} for {alert.for_td}"
            event: AlertFiring | AlertResolved = AlertFiring.create(
                **common, summary=summary[:1024], for_s=b.rule.for_s
            )
        else:
            summary = f"{alert.metric} resolved: {what}{unit}, no longer {alert.condition}"
            event = AlertResolved.create(**common, summary=summary[:1024], resolved_at=at(now))
        return Announcement(b, change, event)
