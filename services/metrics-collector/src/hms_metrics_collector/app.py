"""Builds the metrics-collector service: its settings, routers and resources, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_kit import Service, SystemClock

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import MetricsCollectorSettings


@asynccontextmanager
async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
    """What the metrics-collector's handlers use, opened once per process and closed after the last
    handler ran; handlers receive each by name (``clock: Annotated[Clock, Context("clock")]``)."""
    yield {"clock": SystemClock()}


def create_service(settings: MetricsCollectorSettings | None = None) -> Service:
    """The metrics-collector process: broker, app, resources, health, heartbeat."""
    return Service(
        SERVICE,
        settings or MetricsCollectorSettings(),
        version=__version__,
        routers=(router,),
        resources=resources,
    )
