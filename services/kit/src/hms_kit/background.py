"""Background work of a service: loops that run beside the handlers until the service stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Background:
    """A set of running loops; a loop that fails calls ``on_failure`` (the service stops, and
    its supervisor restarts it: better than running half-broken)."""

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self.on_failure = on_failure
        self._running: list[asyncio.Task[None]] = []

    def spawn(self, work: Awaitable[None]) -> None:
        running: asyncio.Task[None] = asyncio.ensure_future(work)
        running.add_done_callback(self._done)
        self._running.append(running)

    def _done(self, running: asyncio.Task[None]) -> None:
        if not running.cancelled() and running.exception() is not None:
            log.error("background loop failed; stopping the service", exc_info=running.exception())
            self.on_failure()

    async def cancel(self) -> None:
        """Cancel every loop and wait until each has ended."""
        for running in self._running:
            running.cancel()
        for running in self._running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        self._running.clear()
