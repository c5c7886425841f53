"""People's hands on the work, read from the ``hms_job_control`` bucket: paused queues and
approved runs. A queue is paused while its key ``<ns>.queue.<queue>`` exists; a run awaiting
approval may start once ``<ns>.approval.<run_key>`` exists (``hms-ops queues pause|resume``,
``hms-ops jobs approve``). Answers are cached for ``ttl_s``: a pause or an approval takes
effect within about a second, without a request per work item."""

from __future__ import annotations

import logging

from hms_contracts import specs
from hms_contracts.runs import run_key
from hms_kit import Clock
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class JobControl:
    """Whether a queue is paused, whether a run is approved."""

    def __init__(self, js: JetStreamContext, clock: Clock, *, ttl_s: float = 1.0) -> None:
        self.js = js
        self.clock = clock
        self.ttl_s = ttl_s
        self._kv: KeyValue | None = None
        self._seen: dict[str, tuple[bool, float]] = {}

    async def _bucket(self) -> KeyValue | None:
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(specs.JOB_CONTROL.bucket)
            except (BucketNotFoundError, NotFoundError):
                return None  # not provisioned: nothing is paused, nothing approved yet
        return self._kv

    async def has(self, key: str) -> bool:
        """Whether ``key`` is set (cached for ``ttl_s``)."""
        now = self.clock.monotonic()
        cached = self._seen.get(key)
        if cached is not None and now - cached[1] < self.ttl_s:
            return cached[0]
        kv = await self._bucket()
        present = False
        if kv is not None:
            try:
                await kv.get(key)
                present = True
            except (KeyNotFoundError, KeyDeletedError):
                present = False
        self._seen[key] = (present, now)
        return present

    async def paused(self, namespace: str, queue: str) -> bool:
        return await self.has(specs.queue_pause_key(namespace, queue))

    async def approved(self, namespace: str, run_id: str) -> bool:
        return await self.has(specs.approval_key(namespace, run_key(namespace, run_id)))
