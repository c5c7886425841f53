"""The incident-engine's decisions as pure functions, without I/O: what an alert or breach is
(a :class:`Signal`), which incident it belongs to, and which status changes are allowed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hms_contracts import AlertFiring, AlertResolved, IncidentStatus, SlaBreached
from hms_contracts.config import Alert, ConfigObject, Playbook, Silence
from hms_contracts.fields import Severity

SERVICE = "incident-engine"

CLOSED: frozenset[str] = frozenset({"resolved"})
"""Statuses of a closed incident (failed and needs_attention wait for a person)."""

_NEXT: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "mitigating", "resolved", "failed", "needs_attention"}),
    "acknowledged": frozenset({"mitigating", "resolved", "failed", "needs_attention"}),
    "mitigating": frozenset({"resolved", "failed", "needs_attention"}),
    "failed": frozenset({"resolved", "needs_attention"}),
    "needs_attention": frozenset({"resolved", "failed"}),
    "resolved": frozenset(),
}


class TransitionError(ValueError):
    """The incident cannot go from its status to the one asked for."""


def check_transition(current: str, wanted: IncidentStatus) -> None:
    """Raise TransitionError unless ``current -> wanted`` is a step of the lifecycle."""
    if wanted not in _NEXT.get(current, frozenset()):
        raise TransitionError(f"an incident that is {current} cannot become {wanted}")


@dataclass(frozen=True)
class Signal:
    """An alert firing or resolved, or an SLA breach, from the bus or from Alertmanager."""

    namespace: str
    event_id: str
    kind: Literal["firing", "resolved", "breach"]
    fingerprint: str
    rule_id: str
    severity: Severity
    title: str
    occurred_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    source: Literal["alert", "sla_breach", "alertmanager"] = "alert"
    playbook: str | None = None
    detail: str = ""

    def match_labels(self) -> dict[str, str]:
        """Labels silences and grouping see: the alert's, plus ``alertname`` and ``severity``."""
        return {"alertname": self.rule_id, "severity": self.severity, **self.labels}


def _digest(*parts: str, size: int = 16) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:size]


def from_alert(event: AlertFiring | AlertResolved) -> Signal:
    kind: Literal["firing", "resolved"] = "firing" if isinstance(event, AlertFiring) else "resolved"
    return Signal(
        namespace=event.namespace,
        event_id=event.event_id,
        kind=kind,
        fingerprint=event.fingerprint,
        rule_id=event.rule_id,
        severity=event.severity,
        title=event.summary,
        occurred_at=event.occurred_at,
        labels=dict(event.labels),
    )


def from_breach(event: SlaBreached) -> Signal:
    """A breach is one problem per job (or SLO): its fingerprint says which."""
    what = event.job_id or event.slo_id or "unknown"
    return Signal(
        namespace=event.namespace,
        event_id=event.event_id,
        kind="breach",
        fingerprint=_digest(event.namespace, "sla_breach", what),
        rule_id=f"sla_breach.{what}",
        severity=event.severity,
        title=f"SLA breach ({event.reason}): {event.detail}"[:1024],
        occurred_at=event.occurred_at,
        labels={"reason": str(event.reason), **({"job": event.job_id} if event.job_id else {})},
        source="sla_breach",
        detail=event.detail,
    )


def group_key(signal: Signal, group_by: Sequence[str]) -> str:
    """Which incident a signal belongs to: its fingerprint, or the values of the grouping
    labels (alerts sharing them share one incident)."""
    if not group_by or signal.source == "sla_breach":
        return "fp:" + signal.fingerprint
    labels = signal.match_labels()
    return "group:" + _digest(*(f"{k}={labels.get(k, '')}" for k in group_by))


def incident_id_for(namespace: str, key: str, cause_event_id: str) -> str:
    """Deterministic: a replay of the same first signal opens the same incident."""
    return "inc-" + _digest(namespace, key, cause_event_id)


def silenced_by(signal: Signal, silences: Iterable[Silence], now: datetime) -> Silence | None:
    """The first silence of the signal's namespace that mutes it now, if any."""
    labels = signal.match_labels()
    for silence in silences:
        if silence.namespace == signal.namespace and silence.mutes(labels, now):
            return silence
    return None


def playbook_for(
    signal: Signal, alerts: Iterable[ConfigObject], playbooks: Iterable[ConfigObject]
) -> Playbook | None:
    """The playbook a firing alert runs: named on its rule (or, from Alertmanager, by its
    ``playbook`` label), or written inline on the rule. Breaches and resolutions run none."""
    if signal.kind != "firing":
        return None
    wanted = signal.playbook
    if wanted is None:
        rule = next(
            (
                a
                for a in alerts
                if isinstance(a, Alert)
                and a.namespace == signal.namespace
                and a.name == signal.rule_id
            ),
            None,
        )
        if rule is None or rule.playbook is None:
            return None
        if not isinstance(rule.playbook, str):
            return Playbook(
                namespace=rule.namespace, name=f"{rule.name}.inline", steps=rule.playbook
            )
        wanted = rule.playbook
    return next(
        (
            p
            for p in playbooks
            if isinstance(p, Playbook) and p.namespace == signal.namespace and p.name == wanted
        ),
        None,
    )
