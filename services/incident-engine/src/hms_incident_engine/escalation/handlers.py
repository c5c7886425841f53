"""Escalation's subscriber: the incident lifecycle starts and stops escalation policies."""

from __future__ import annotations

from typing import Annotated

from faststream import Context
from faststream.nats import NatsRouter
from hms_contracts import IncidentClosed, IncidentOpened, IncidentUpdated, NotifyRequested, specs
from hms_kit import Reject, durable_subscriber

from hms_incident_engine.core import SERVICE

from .engine import EscalationEngine
from .errors import InvalidMessage

router = NatsRouter()

Engine = Annotated[EscalationEngine, Context("escalation")]


async def on_incident_opened(event: IncidentOpened, escalation: Engine) -> None:
    await escalation.opened(event)


#: statuses after which nobody needs to be paged any more (the incident may close later)
ENDED = ("resolved",)


async def on_incident_updated(event: IncidentUpdated, escalation: Engine) -> None:
    if event.status == "acknowledged":
        await escalation.acknowledged(event.namespace, event.incident_id, event.occurred_at)
    elif event.status in ENDED:
        await escalation.closed(event.namespace, event.incident_id)


async def on_incident_closed(event: IncidentClosed, escalation: Engine) -> None:
    await escalation.closed(event.namespace, event.incident_id)


async def on_notify_requested(event: NotifyRequested, escalation: Engine) -> None:
    """A playbook's notify step: delivered like an escalation's message, once per request."""
    try:
        await escalation.notify(
            event.namespace,
            event.incident_id,
            f"[{event.severity}] {event.title}",
            event.message,
            [event.target],
            key=event.event_id,
        )
    except InvalidMessage as exc:
        raise Reject(str(exc)) from None


durable_subscriber(
    router,
    specs.INCIDENT_ESCALATION,
    {
        IncidentOpened: on_incident_opened,
        IncidentUpdated: on_incident_updated,
        IncidentClosed: on_incident_closed,
        NotifyRequested: on_notify_requested,
    },
    service=SERVICE,
)
