"""Deliveries held back while a person has a hand on them: their queue is paused, or their
run awaits approval. A held delivery keeps its place (``in_progress`` every third of the ack
wait, so JetStream neither redelivers it nor counts a delivery), frees its puller for the
other queues, and is worked once released, at most ``concurrency`` at a time; it is settled
here (ack, nak after a delay, dead letter) since its puller has moved on. On shutdown a held
delivery is nakked for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hms_contracts.specs import ConsumerSpec
from hms_kit import Service
from hms_kit.consumer import Delivery
from hms_kit.fate import settle_failure

log = logging.getLogger(__name__)

#: how often a held delivery asks whether it is released, seconds
POLL_S = 0.5


class Parking:
    """The deliveries one worker-pool process holds back."""

    def __init__(self, service: Service, concurrency: int) -> None:
        self.service = service
        self.slots = asyncio.Semaphore(concurrency)
        self.held: set[asyncio.Task[None]] = set()

    def park(
        self,
        d: Delivery[Any],
        spec: ConsumerSpec,
        held: Callable[[], Awaitable[bool]],
        work: Callable[[], Awaitable[None]],
    ) -> None:
        """Hold ``d`` while ``held()``, then ``work()`` and settle it."""
        task = asyncio.ensure_future(self._hold(d, spec, held, work))
        self.held.add(task)
        task.add_done_callback(self.held.discard)

    async def _hold(
        self,
        d: Delivery[Any],
        spec: ConsumerSpec,
        held: Callable[[], Awaitable[bool]],
        work: Callable[[], Awaitable[None]],
    ) -> None:
        interval = spec.ack_wait_s / 3
        beat_at = time.monotonic() + interval
        try:
            while await held():
                if time.monotonic() >= beat_at:
                    with contextlib.suppress(Exception):
                        await d.msg.in_progress()
                    beat_at = time.monotonic() + interval
                await asyncio.sleep(min(POLL_S, interval))
            async with self.slots:
                try:
                    await work()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not d.msg.is_acked:
                        await settle_failure(
                            self.service.nc, d.msg, exc, spec, self.service.metrics
                        )
                    return
            if not d.msg.is_acked:
                await d.msg.ack()
        except asyncio.CancelledError:
            if not d.msg.is_acked:
                with contextlib.suppress(Exception):
                    await asyncio.shield(d.msg.nak())
            raise

    async def close(self) -> None:
        """Hand every held delivery back."""
        for task in list(self.held):
            task.cancel()
        await asyncio.gather(*self.held, return_exceptions=True)
