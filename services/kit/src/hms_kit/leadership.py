"""Leadership of a singleton service: hold the lease, run the leader loops only while held."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from hms_contracts import specs
from nats.js import JetStreamContext

from .background import Background
from .lease import Lease
from .metrics import KitMetrics

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger(__name__)

Loop = Callable[["Service"], Awaitable[None]]
"""A background loop of a service: ``async def loop(service) -> None``, cancelled on stop."""


class Leadership:
    """Keeps the service's lease in ``bucket`` and starts or cancels its leader loops."""

    def __init__(
        self,
        service: Service,
        bucket: specs.KVSpec,
        loops: Sequence[Loop],
        *,
        renew_every_s: float | None,
        metrics: KitMetrics,
    ) -> None:
        self.service = service
        self.bucket = bucket
        self.loops = tuple(loops)
        self.renew_every_s = renew_every_s or max(bucket.ttl_s / 3, 0.2)
        self.metrics = metrics
        self.leader = False
        self.lease: Lease | None = None
        self._keeping = Background(service.stop)
        self._leading = Background(service.stop)

    async def start(self, js: JetStreamContext) -> None:
        """Start contending for the lease."""
        kv = await js.key_value(self.bucket.bucket)
        key = specs.lease_key(self.service.name)
        lease = Lease(kv, key, self.service.instance_id, ttl_s=self.bucket.ttl_s)
        self.lease = lease
        self._keeping.spawn(lease.keep(self.renew_every_s, self._changed))
        await self._first_attempt(lease)

    async def _first_attempt(self, lease: Lease, timeout_s: float = 2.0) -> None:
        """Wait until the lease is ours or known to be someone else's, so the service's first
        heartbeat tells the truth (``hms-ops status`` fails a singleton with no leader)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not lease.held:
            with contextlib.suppress(Exception):
                if await lease.holder_now() not in (None, self.service.instance_id):
                    return
            await asyncio.sleep(0.02)

    async def _changed(self, leader: bool) -> None:
        self.leader = leader
        self.metrics.leader.set(1 if leader else 0)
        if leader:
            log.info("leading: this instance holds the %s lease", self.service.name)
            for loop in self.loops:
                self._leading.spawn(loop(self.service))
        else:
            log.warning("standing by: this instance does not hold the %s lease", self.service.name)
            await self._leading.cancel()

    async def stop(self) -> None:
        """Stop renewing, cancel the leader loops, and give the lease up (conditionally on the
        revision we wrote, so a successor's lease is never removed)."""
        await self._keeping.cancel()
        await self._leading.cancel()
        if self.lease is not None:
            await self.lease.release()
