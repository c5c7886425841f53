"""Running a :class:`~hms_kit.ServiceKit` inside the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hms_kit.service import ServiceKit


@asynccontextmanager
async def running(kit: ServiceKit) -> AsyncIterator[ServiceKit]:
    """Start the kit's app (hooks, broker, tasks) and stop it with a drain on the way out.

    Once started, the connection is flushed: the server has every subscription, so a core
    message published next is not lost to a race.
    """
    await kit.app.start()
    await kit.nc.flush()
    try:
        yield kit
    finally:
        await kit.app.stop()
