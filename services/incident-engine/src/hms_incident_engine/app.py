"""Builds the incident-engine service: its settings, routers and resources, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_kit import Service, SystemClock

from . import __version__
from .core import SERVICE
from .escalation import escalate_forever, escalation_resources
from .escalation import router as escalation_router
from .handlers import router
from .settings import IncidentEngineSettings


@asynccontextmanager
async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
    """What the incident-engine's handlers use, opened once per process and closed after the last
    handler ran; handlers receive each by name (``clock: Annotated[Clock, Context("clock")]``)."""
    clock = SystemClock()
    async with escalation_resources(service, clock) as escalation:
        yield {"clock": clock, **escalation}


def create_service(settings: IncidentEngineSettings | None = None) -> Service:
    """The incident-engine process: broker, app, resources, health, heartbeat, lease."""
    return Service(
        SERVICE,
        settings or IncidentEngineSettings(),
        version=__version__,
        routers=(router, escalation_router),
        resources=resources,
        leader_loops=(escalate_forever,),
    )
