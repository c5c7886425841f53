"""A lease in JetStream KV: one holder per key, compare-and-swap renewal, lapse on TTL.

The bucket's TTL is the lease's lifetime. The holder renews by updating the key with the
revision it last wrote (compare-and-swap), so a holder that was partitioned away and lost the
key cannot renew over its successor. A standby keeps trying to create the key, which succeeds
only once the previous holder's entry has expired or been released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071  # JetStream's JSStreamWrongLastSequenceErr


class Lease:
    """Hold ``key`` in a KV bucket on behalf of ``holder``."""

    def __init__(self, kv: KeyValue, key: str, holder: str) -> None:
        self.kv = kv
        self.key = key
        self.holder = holder
        self._revision: int | None = None

    @property
    def held(self) -> bool:
        return self._revision is not None

    async def try_acquire(self) -> bool:
        """Acquire or renew; True while this holder has the lease."""
        value = self.holder.encode()
        try:
            if self._revision is None:
                self._revision = await self.kv.create(self.key, value)
                log.info("lease %s acquired by %s", self.key, self.holder)
            else:
                self._revision = await self.kv.update(self.key, value, last=self._revision)
        except KeyWrongLastSequenceError:
            if self._revision is not None:
                log.warning("lease %s lost by %s", self.key, self.holder)
            self._revision = None
        return self.held

    async def holder_now(self) -> str | None:
        """Who holds the lease according to the bucket (None: nobody)."""
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def release(self) -> None:
        """Give the lease up at once, so a standby need not wait for the TTL.

        The delete is conditional on the revision we last wrote: if the lease lapsed and moved
        on while we stalled, the successor's entry stays (a purge would remove it and let a
        third instance lead alongside the successor).
        """
        if self._revision is None:
            return
        revision, self._revision = self._revision, None
        try:
            await self.kv.delete(self.key, last=revision)
        except BadRequestError as exc:
            # nats-py raises the bare API error here: 10071 is "wrong last sequence"
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            log.warning("lease %s had moved on from %s; left to its holder", self.key, self.holder)
            return
        log.info("lease %s released by %s", self.key, self.holder)

    async def keep(
        self,
        every: float,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        """Acquire and renew forever (cancel to stop); report gains and losses."""
        was = False
        while True:
            try:
                now = await self.try_acquire()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus is down: we cannot prove we still hold it
                log.warning("lease %s renewal failed: %s", self.key, exc)
                now = False
                self._revision = None
            if now != was and on_change is not None:
                await on_change(now)
            was = now
            await asyncio.sleep(every)
