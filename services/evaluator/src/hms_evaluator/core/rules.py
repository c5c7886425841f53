"""Alert rules over streaming windows: which series each rule watches, their windows, and the
alerts that fire and resolve.

:class:`RuleEngine` holds the rules (kind ``alert``) and, for every series a rule matches, a
*binding*: the series' window and its alert state. A sample batch updates only the windows of
series that rules use (a metric no rule names costs one dict lookup per sample) and evaluates
the bindings it touched, so a breach is known as its sample arrives; :meth:`RuleEngine.tick`
evaluates every binding, which drives ``for`` and ``keep_firing_for`` timers and no-data.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from hms_contracts import AlertFiring, AlertResolved
from hms_contracts.config import Alert, Matcher
from hms_contracts.config.rules import QUANTILES

from .samples import LABELS, Sample
from .states import AlertState, Change, fingerprint, step
from .windows import HistogramWindow, Window, bucket_bound

LabelKey = tuple[tuple[str, str], ...]
Adder = Callable[[float, float], bool]
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
BUCKET_SUFFIX = "_bucket"


def compile_matchers(matchers: Sequence[Matcher]) -> Callable[[dict[str, str]], bool]:
    """One function checking a series' labels against every matcher (a missing label reads
    as empty, regular expressions match whole values, as in Prometheus)."""
    equal = tuple((m.label, m.value) for m in matchers if m.op == "=")
    differ = tuple((m.label, m.value) for m in matchers if m.op == "!=")
    patterns = tuple(
        (m.label, re.compile(m.value), m.op == "=~") for m in matchers if m.op in ("=~", "!~")
    )

    def matches(labels: dict[str, str]) -> bool:
        get = labels.get
        for label, value in equal:
            if get(label, "") != value:
                return False
        for label, value in differ:
            if get(label, "") == value:
                return False
        for label, pattern, wanted in patterns:
            if (pattern.fullmatch(get(label, "")) is not None) is not wanted:
                return False
        return True

    return matches


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
    evaluated_at: float = -math.inf

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
    op: Callable[[float, float], bool]
    threshold: float
    matcher: Callable[[dict[str, str]], bool]
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
            _OPERATORS[alert.condition.operator],
            alert.condition.threshold,
            compile_matchers(alert.matchers),
        )

    def matches(self, labels: dict[str, str]) -> bool:
        return self.matcher(labels)

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
        self._names: dict[str, set[str]] = {}  # namespace -> series names rules use
        # namespace -> series name -> raw labels -> [(the window's add, binding)]
        self._series: dict[str, dict[str, dict[bytes, list[tuple[Adder, Binding]]]]] = {}
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
        self._watch, self._names = {}, {}
        for rule in self.rules.values():
            self._watch.setdefault((rule.alert.namespace, rule.series_name), []).append(rule)
            self._names.setdefault(rule.alert.namespace, set()).add(rule.series_name)
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
        self, namespace: str, name: str, labels: Mapping[str, str]
    ) -> list[tuple[Adder, Binding]]:
        found: list[tuple[Adder, Binding]] = []
        for rule in self._watch.get((namespace, name), ()):
            series = dict(labels)
            le = series.pop("le", None) if rule.alert.histogram else None
            if rule.alert.histogram and le is None:
                continue
            if not rule.matches(series):
                continue
            b = rule.binding(label_key(series), series, AlertState())
            b.placeholder = False  # a series without labels is real data, not a stand-in
            w = b.window
            if isinstance(w, HistogramWindow):
                found.append((functools.partial(w.add_bucket, bucket_bound(le or "")), b))
            else:
                found.append((w.add, b))
        return found

    def ingest(self, namespace: str, samples: Sequence[Sample]) -> set[Binding]:
        """Feed one batch's samples to the windows of the series rules use; the bindings
        touched. Samples of metrics no rule names are skipped unread; an unreadable sample of
        a watched one (labels, time or value) is counted in ``dropped``."""
        touched: set[Binding] = set()
        names = self._names.get(namespace)
        if not names:
            return touched
        by_name = self._series.setdefault(namespace, {})
        times = self._times
        isfinite = math.isfinite
        last_name: str | None = None
        cache: dict[bytes, list[tuple[Adder, Binding]]] | None = None
        touch = touched.add
        ingested = dropped = 0
        for s in samples:
            name = s.name
            if name != last_name:
                last_name = name
                cache = by_name.setdefault(name, {}) if name in names else None
            if cache is None:
                continue
            raw = bytes(s.labels)
            targets = cache.get(raw)
            if targets is None:
                try:
                    labels = LABELS.decode(raw)
                    targets = cache[raw] = self._bindings_of(namespace, name, labels)
                except (msgspec.DecodeError, ValueError):
                    dropped += 1
                    continue
            if not targets:
                continue
            v = s.value
            t = times.get(s.observed_at)
            if t is None:
                try:
                    t = self.parse_time(s.observed_at)
                except ValueError:
                    dropped += 1
                    continue
            if not isfinite(v):
                dropped += 1
                continue
            ingested += 1
            for add, b in targets:
                if add(t, v):
                    touch(b)
                else:
                    dropped += 1
        self.ingested += ingested
        self.dropped += dropped
        return touched

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, bindings: Iterable[Binding], now: float) -> list[Announcement]:
        """Evaluate these bindings at ``now``; the alerts that fired or resolved."""
        out: list[Announcement] = []
        for b in bindings:
            rule = b.rule
            b.evaluated_at = now
            state = b.state
            if b.placeholder:
                has_data = any(
                    o.value(now) is not None for o in rule.bindings.values() if o is not b
                )
                value: float | None = None if has_data else 0.0
                holds: bool | None = not has_data
            else:
                value = b.window.value(now)
                if value is None:
                    policy = rule.alert.no_data
                    holds = False if policy == "ok" else (True if policy == "alert" else None)
                else:
                    holds = rule.op(value, rule.threshold)
                if not holds and state.phase == "inactive":
                    continue  # the common case: nothing holds, nothing to change
            phase, since = state.phase, state.active_since
            change = step(state, holds, value, now, for_s=rule.for_s, keep_firing_s=rule.keep_s)
            if (
                state.phase != phase
                or state.active_since != since
                or (holds and state.phase == "firing" and rule.keep_s)
            ):
                self.dirty.add(b)
            if change is not None:
                out.append(self._announce(b, change, now))
        return out

    def tick(self, now: float, fresh_s: float = 0.0) -> list[Announcement]:
        """Evaluate the bindings that need it: every one in an alert (``for`` timers,
        ``keep_firing_for``) or standing in for no data, and every other one not evaluated
        in the last ``fresh_s`` seconds (a sample just evaluated it; time alone moves its
        window and brings no-data)."""
        stale = now - fresh_s
        due = [
            b
            for b in self.bindings()
            if b.evaluated_at <= stale or b.state.phase != "inactive" or b.placeholder
        ]
        return self.evaluate(due, now)

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
