"""Running a :class:`~hms_kit.Service` inside the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hms_kit.service import Service


@asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    """Start the service's app (hooks, broker, tasks) and stop it with a drain on the way out.

    Once started, the connection is flushed: the server has every subscription, so a core
    message published next is not lost to a race.
    """
    await service.app.start()
    await service.nc.flush()
    try:
        yield service
    finally:
        await service.app.stop()
