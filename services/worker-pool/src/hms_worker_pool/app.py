"""Builds the worker-pool service: its settings, routers and resources, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_kit import Service, SystemClock

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import WorkerPoolSettings


@asynccontextmanager
async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
    """What the worker-pool's handlers use, opened once per process and closed after the last
    handler ran; handlers receive each by name (``clock: Annotated[Clock, Context("clock")]``)."""
    yield {"clock": SystemClock()}


def create_service(settings: WorkerPoolSettings | None = None) -> Service:
    """The worker-pool process: broker, app, resources, health, heartbeat."""
    return Service(
        SERVICE,
        settings or WorkerPoolSettings(),
        version=__version__,
        routers=(router,),
        resources=resources,
    )
