"""Working fanned-out items: batches of up to 100 from the ``worker_pool_items`` durable.

Per batch: the items already recorded done are acked unrun (a redelivery after a crash between
record and ack); each other item runs its task with the item in its context; a failed item is
nakked after its job's backoff, or on its last attempt dead-lettered with the reason at once;
an item whose task cannot be run is dead-lettered at once. The items done are recorded in one
SQLite transaction, and only then does the batch consumer ack them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from hms_contracts.runs import WorkItem
from hms_contracts.specs import ConsumerSpec
from hms_kit import Service
from hms_kit.consumer import Delivery
from hms_kit.deadletter import dead_letter

from .core import TaskError, failure_fate, parse_task
from .metrics import WorkerMetrics
from .runner import RunContext, failure_text, run_task, scratch_name
from .store import OutcomeStore

log = logging.getLogger(__name__)


class ItemWorker:
    """Works the items one BatchConsumer hands it, a batch at a time."""

    def __init__(
        self,
        service: Service,
        store: OutcomeStore,
        spec: ConsumerSpec,
        *,
        scratch_root: Path,
        kill_grace_s: float,
        metrics: WorkerMetrics,
    ) -> None:
        self.service = service
        self.store = store
        self.spec = spec
        self.scratch_root = scratch_root
        self.kill_grace_s = kill_grace_s
        self.metrics = metrics

    async def handle(self, batch: Sequence[Delivery[WorkItem]]) -> None:
        keys = [(d.event.namespace, d.event.run_id, d.event.index) for d in batch]
        seen = await self.store.done_items(keys)
        done: list[tuple[str, str, int]] = []
        beating = asyncio.ensure_future(self._keep_alive(batch))
        try:
            for key, d in zip(keys, batch, strict=True):
                if key in seen:
                    self.metrics.items.labels(outcome="already_done").inc()
                    continue
                seen.add(key)  # the same item twice in one batch runs once
                if await self.work(d):
                    done.append(key)
        except asyncio.CancelledError:
            # draining: hand back what is not done at once; record what is
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.record_items(done))
                for d in batch:
                    if (
                        not d.msg.is_acked
                        and (d.event.namespace, d.event.run_id, d.event.index) not in done
                    ):
                        await asyncio.shield(d.msg.nak())
            raise
        finally:
            beating.cancel()
        await self.store.record_items(done)
        self.metrics.items.labels(outcome="completed").inc(len(done))

    async def work(self, d: Delivery[WorkItem]) -> bool:
        """Run one item; True when done, else the item is settled here (nak or dead letter)."""
        item = d.event
        try:
            task = parse_task(item.task)
        except TaskError as exc:
            await self._reject(d, f"work item {item.index} of run {item.run_id!r}: {exc}")
            return False
        scratch: Path | None = None
        if task.command is not None:
            name = f"{item.namespace}-{item.run_id}-item{item.index}-{d.attempt}"
            scratch = self.scratch_root / scratch_name(name)
            scratch.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(
            item.run_id,
            item.job_id,
            item.namespace,
            d.attempt,
            scratch or self.scratch_root,
            item=item.payload,
            index=item.index,
        )
        try:
            result = await run_task(task, ctx, grace_s=self.kill_grace_s)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        if result.ok:
            return True
        fate = failure_fate(task, d.attempt, self.spec)
        if fate.will_retry:
            self.metrics.items.labels(outcome="retried").inc()
            await d.msg.nak(delay=fate.delay_s)
            return False
        await self._reject(d, f"failed {d.attempt} attempt(s): {failure_text(result)}")
        return False

    async def _reject(self, d: Delivery[WorkItem], reason: str) -> None:
        await dead_letter(self.service.nc, d.msg, reason, self.service.metrics)
        self.metrics.items.labels(outcome="dead_lettered").inc()

    async def _keep_alive(self, batch: Sequence[Delivery[WorkItem]]) -> None:
        """Keep the batch's deliveries while its items are worked, every third of the ack wait."""
        interval = self.spec.ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            for d in batch:
                if not d.msg.is_acked:
                    with contextlib.suppress(Exception):
                        await d.msg.in_progress()
