"""Escalation's subscriber: the incident lifecycle starts and stops escalation policies."""

from __future__ import annotations

from typing import Annotated

from faststream import Context
from faststream.nats import NatsRouter
from hms_contracts import IncidentClosed, IncidentOpened, IncidentUpdated, specs
from hms_kit import durable_subscriber

from hms_incident_engine.core import SERVICE

from .engine import EscalationEngine

router = NatsRouter()

Engine = Annotated[EscalationEngine, Context("escalation")]


async def on_incident_opened(event: IncidentOpened, escalation: Engine) -> None:
    await escalation.opened(event)


async def on_incident_updated(event: IncidentUpdated, escalation: Engine) -> None:
    if event.status == "acknowledged":
        await escalation.acknowledged(event.namespace, event.incident_id, event.occurred_at)


async def on_incident_closed(event: IncidentClosed, escalation: Engine) -> None:
    await escalation.closed(event.namespace, event.incident_id)


durable_subscriber(
    router,
    specs.INCIDENT_ESCALATION,
    {
        IncidentOpened: on_incident_opened,
        IncidentUpdated: on_incident_updated,
        IncidentClosed: on_incident_closed,
    },
    service=SERVICE,
)
