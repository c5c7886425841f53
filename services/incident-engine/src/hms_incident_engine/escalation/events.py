"""What escalation tells the bus: a notification sent, or not sent (a timeline entry and an
alert, resolved once a retry gets through). Pure builders of the contracts' events."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from hms_contracts import AlertFiring, AlertResolved, IncidentEscalated
from hms_contracts.bus import BusEvent
from hms_contracts.escalation import EscalationFailed

from . import core
from .store import Delivery

FAILED_RULE = "escalation_failed"
PROBE_RULE = "escalation_probe_failed"
PROBE_INCIDENT = "escalation-probe"
"""The incident id test notifications are filed under, in the system namespace."""
METRIC = "hms.escalation.failed"


def message_id(key: str) -> str:
    """The same Message-ID for every attempt of one delivery."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@hms-ops>"


@dataclass(frozen=True, slots=True)
class Unsent:
    """A notification (or a whole level) that is not sent: where, what, why."""

    namespace: str
    incident_id: str
    step: str
    level: int | None
    target: str | None
    reason: str
    attempts: int
    due_at: datetime

    @classmethod
    def of(cls, d: Delivery, reason: str, attempts: int) -> Unsent:
        target = ", ".join(d.targets)[:1000]
        return cls(d.namespace, d.incident_id, d.key, d.level, target, reason, attempts, d.due_at)

    @property
    def rule(self) -> str:
        return PROBE_RULE if self.incident_id == PROBE_INCIDENT else FAILED_RULE

    @property
    def fingerprint(self) -> str:
        key = f"{self.namespace}\0{self.incident_id}\0{self.step}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def labels(self) -> dict[str, str]:
        labels = {"incident_id": self.incident_id, "step": self.step[:1000]}
        if self.target:
            labels["target"] = self.target
        return labels


def timeline_entry(u: Unsent, now: datetime, *, retrying: bool) -> EscalationFailed:
    return EscalationFailed.create(
        namespace=u.namespace,
        occurred_at=now,
        incident_id=u.incident_id,
        step=u.step,
        level=u.level,
        target=u.target,
        reason=core.one_line(u.reason, 1000),
        attempts=u.attempts,
        due_at=u.due_at,
        retrying=retrying,
    )


def unsent(u: Unsent, now: datetime, *, retrying: bool) -> list[BusEvent]:
    """The timeline entry and the alert for a notification not sent."""
    what = f"level {u.level}" if u.level else "a notification"
    alert = AlertFiring.create(
        namespace=u.namespace,
        occurred_at=now,
        rule_id=u.rule,
        metric=METRIC,
        fingerprint=u.fingerprint,
        value=float(max(u.attempts, 1)),
        operator=">",
        threshold=0.0,
        severity="critical",
        labels=u.labels,
        started_at=u.due_at,
        summary=core.one_line(f"incident {u.incident_id}: {what} not sent: {u.reason}", 1000),
    )
    return [timeline_entry(u, now, retrying=retrying), alert]


def sent_after_all(u: Unsent, now: datetime) -> AlertResolved:
    """The alert of an unsent notification, resolved: a retry got through."""
    return AlertResolved.create(
        namespace=u.namespace,
        occurred_at=now,
        rule_id=u.rule,
        metric=METRIC,
        fingerprint=u.fingerprint,
        value=0.0,
        operator=">",
        threshold=0.0,
        severity="critical",
        labels=u.labels,
        started_at=u.due_at,
        resolved_at=now,
        summary=core.one_line(f"incident {u.incident_id}: notification sent after retries"),
    )


def escalated(d: Delivery, reference: str, now: datetime) -> list[IncidentEscalated]:
    """One fact per person an escalation level's message reached."""
    if d.level is None:
        return []
    return [
        IncidentEscalated.create(
            namespace=d.namespace,
            occurred_at=now,
            incident_id=d.incident_id,
            level=d.level,
            channel="email",
            target=t,
            reference=reference,
        )
        for t in d.targets
    ]
