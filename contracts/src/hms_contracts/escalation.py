"""Escalation's own facts: a notification that could not be sent (the timeline's error entry).

A sent one is :class:`~hms_contracts.incidents.IncidentEscalated`; one that is not sent in time
is this event on ``ops.incident.<ns>.escalation_failed``, together with an alert
(``ops.alert.<ns>.firing``, rule ``escalation_failed``) so that nobody is silently not paged.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from . import subjects
from .bus import BusEvent
from .fields import Slug, Text
from .subjects import Family


class EscalationFailed(BusEvent):
    """An escalation step or a notification was not sent in time (it may still be retried)."""

    family: ClassVar[Family] = subjects.INCIDENT
    event_type: ClassVar[str | None] = "escalation_failed"

    incident_id: Slug = Field(description="Id of the incident")
    step: Text = Field(
        description="Which notification: policy, epoch, round, level and target, or the "
        "playbook notification's key"
    )
    level: int | None = Field(
        default=None, ge=1, description="Escalation level, None for a playbook notification"
    )
    target: Text | None = Field(default=None, description="Address or schedule it was for")
    reason: Text = Field(description="Why it is not sent: the SMTP error, nobody on call ...")
    attempts: int = Field(ge=0, description="Delivery attempts so far")
    due_at: AwareDatetime = Field(description="When it was due")
    retrying: bool = Field(description="Whether delivery is still being retried")

    def natural_key(self) -> tuple[object, ...]:
        """One report per step and outcome (still retrying, or given up)."""
        key = (self.incident_id, self.event_type, self.step, self.retrying)
        return (self.namespace, "incident", *key)
