"""A lease in JetStream KV: one holder per key, compare-and-swap renewal, lapse on TTL.

The bucket's TTL is the lease's lifetime. The holder renews by updating the key with the
revision it last wrote (compare-and-swap), so a holder that was partitioned away and lost the
key cannot renew over its successor. A standby keeps trying to create the key, which succeeds
only once the previous holder's entry has expired or been released.

A holder cannot learn from the server that it lost the lease while it is frozen or cut off, so
it also keeps its own deadline: the lease counts as held only until ``ttl_s`` after the start
of the last successful renewal (monotonic clock), which is never later than the server's expiry.
Leader work checks :attr:`Lease.held` (free) before acting, :meth:`Lease.confirm` (one KV read)
before an effect that must not happen twice, and can carry :attr:`Lease.fencing_token` (the
lease revision, increasing across holders) so a receiver can refuse a stale leader's effect.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071  # JetStream's JSStreamWrongLastSequenceErr


class Lease:
    """Hold ``key`` in a KV bucket on behalf of ``holder``."""

    def __init__(self, kv: KeyValue, key: str, holder: str, *, ttl_s: float | None = None) -> None:
        self.kv = kv
        self.key = key
        self.holder = holder
        #: the lease's lifetime (None: read the bucket's TTL on the first acquisition)
        self.ttl_s = ttl_s
        self._revision: int | None = None
        self._renewed_at = -math.inf

    @property
    def held(self) -> bool:
        """Whether we hold the lease as far as we know, without asking the server: we wrote
        it last and its TTL has not elapsed since our last successful renewal began."""
        if self._revision is None:
            return False
        if time.monotonic() - self._renewed_at >= (self.ttl_s or math.inf):
            log.warning("lease %s: TTL elapsed since %s last renewed it", self.key, self.holder)
            self._revision = None
            return False
        return True

    @property
    def fencing_token(self) -> int | None:
        """The lease revision while held: a successor's is always greater."""
        return self._revision if self.held else None

    async def confirm(self) -> bool:
        """Whether we still hold the lease, checked against the bucket (one KV read)."""
        if not self.held:
            return False
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:
            entry = None
        if entry is None or entry.revision != self._revision or entry.value != self.holder.encode():
            log.warning("lease %s: %s no longer holds it", self.key, self.holder)
            self._revision = None
            return False
        return self.held

    async def try_acquire(self) -> bool:
        """Acquire or renew; True while this holder has the lease."""
        value = self.holder.encode()
        if self.ttl_s is None:
            self.ttl_s = (await self.kv.status()).ttl or math.inf
        started = time.monotonic()  # the server's TTL starts later: our deadline is earlier
        try:
            if self._revision is None:
                self._revision = await self.kv.create(self.key, value)
                log.info("lease %s acquired by %s", self.key, self.holder)
            else:
                self._revision = await self.kv.update(self.key, value, last=self._revision)
            self._renewed_at = started
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
        """Acquire and renew forever (cancel to stop); report gains and losses.

        A loss is reported as soon as a renewal fails or the TTL elapses locally since the last
        successful one (a renewal still pending at that moment is abandoned), before a standby
        can take the lease over.
        """
        was = False
        while True:
            now = await self._renew(deadline=self._deadline() if was else None)
            if now != was and on_change is not None:
                await on_change(now)
            was = now
            await asyncio.sleep(min(every, self._deadline() - time.monotonic()) if now else every)

    def _deadline(self) -> float:
        return self._renewed_at + (self.ttl_s or math.inf)

    async def _renew(self, *, deadline: float | None) -> bool:
        if deadline is not None and not self.held:
            return False  # frozen past the TTL: stand down before trying again
        timeout = None if deadline is None else deadline - time.monotonic()
        try:
            return await asyncio.wait_for(self.try_acquire(), timeout)
        except TimeoutError:
            log.warning("lease %s: renewal outlasted the TTL; standing down", self.key)
        except Exception as exc:  # the bus is down: we cannot prove we still hold it
            log.warning("lease %s renewal failed: %s", self.key, exc)
        self._revision = None
        return False
