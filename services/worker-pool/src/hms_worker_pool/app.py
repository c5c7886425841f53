"""Builds the worker-pool service: its settings, its worker loop and resources, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_kit import Clock, Service, SystemClock

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import WorkerPoolSettings
from .worker import work


@asynccontextmanager
async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
    """What the worker-pool's handlers use, opened once per process and closed after the last
    handler ran; handlers receive each by name (``clock: Annotated[Clock, Context("clock")]``)."""
    yield {"clock": SystemClock()}


def create_service(
    settings: WorkerPoolSettings | None = None, *, clock: Clock | None = None
) -> Service:
    """The worker-pool process: broker, app, resources, health, heartbeat, the worker loop."""
    settings = settings or WorkerPoolSettings()
    spec = settings.consumer()
    items_spec = settings.items_consumer()

    async def loop(service: Service) -> None:
        await work(
            service,
            spec,
            clock or SystemClock(),
            concurrency=settings.concurrency,
            kill_grace_s=settings.kill_grace_s,
            items_spec=items_spec,
            items_batch=settings.items_fetch,
            engine=settings.container_engine,
        )

    return Service(
        SERVICE,
        settings,
        version=__version__,
        routers=(router,),
        resources=resources,
        loops=(loop,),
        consumers=(spec, items_spec),
    )
