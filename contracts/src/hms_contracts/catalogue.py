"""The event catalogue: every event model on the bus, and decoding a message by its subject.

Build events with ``Model.create(...)`` so the ``event_id`` is the deterministic one;
``event.subject()`` is where it is published; :func:`event_for_subject` maps back.
"""

from __future__ import annotations

from . import subjects
from .agency import AgencyEvent
from .alerts import AlertFiring, AlertResolved, SlaBreached, SloStatusReported
from .audit import AuditRecorded
from .bus import BusEvent
from .configevents import ConfigChanged
from .errors import SubjectError
from .escalation import EscalationFailed
from .heartbeats import ServiceHeartbeat
from .incidents import (
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStepRan,
    IncidentUpdated,
    NotifyRequested,
    QueueControlRequested,
    ScaleRequested,
    TicketFiled,
)
from .metrics import MetricSampleBatch
from .runs import (
    RunAwaitingApproval,
    RunCancelRequested,
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunScheduled,
    RunStarted,
    WorkItemBatch,
)
from .scaling import ScaleDecided

CATALOGUE: tuple[type[BusEvent], ...] = (
    ServiceHeartbeat,
    MetricSampleBatch,
    AlertFiring,
    AlertResolved,
    SlaBreached,
    SloStatusReported,
    IncidentOpened,
    IncidentUpdated,
    IncidentStepRan,
    IncidentEscalated,
    IncidentClosed,
    EscalationFailed,
    NotifyRequested,
    TicketFiled,
    ScaleRequested,
    QueueControlRequested,
    RunScheduled,
    RunAwaitingApproval,
    RunStarted,
    RunProgressed,
    RunCompleted,
    RunFailed,
    RunDeadLettered,
    RunCancelRequested,
    WorkItemBatch,
    ScaleDecided,
    AuditRecorded,
    ConfigChanged,
    AgencyEvent,
)
"""Every event model on the bus, in documentation order."""


def event_for_subject(subject: str) -> type[BusEvent] | None:
    """The event model published on ``subject``, or None when no model is (e.g. ``dlq.>``)."""
    for model in CATALOGUE:
        if subjects.matches(model.subject_pattern(), subject):
            return model
    return None


def decode(subject: str, payload: bytes | str) -> BusEvent:
    """Validate a message received on ``subject`` into its event.

    Raises SubjectError when no event lives on the subject or the payload names another
    subject (wrong namespace or routing token), and pydantic's ValidationError when the
    payload is invalid; either way the message belongs on the dead-letter subject.
    """
    model = event_for_subject(subject)
    if model is None:
        raise SubjectError(f"no event in the catalogue is published on {subject!r}")
    event = model.model_validate_json(payload)
    if event.subject() != subject:
        raise SubjectError(f"{model.__name__} for {event.subject()!r} arrived on {subject!r}")
    return event
