"""Working fanned-out items: batches from the ``worker_pool_items`` durable.

Per fetch (up to 100 messages, each a batch of items): the items already recorded done are
skipped (a redelivery after a crash between record and ack); each other item runs its task with
the item in its context. Then, in this order: the items done are recorded in one SQLite
transaction; a message with a failed item is nakked after its job's backoff (only its failed
items run again), or on its last attempt each failed item is dead-lettered on its own with the
reason; an item whose task cannot be run is dead-lettered at once. Only then does the batch
consumer ack the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from hms_contracts.runs import WorkItemBatch
from hms_contracts.specs import ConsumerSpec
from hms_kit import Deferred, Service
from hms_kit.consumer import Delivery
from hms_kit.deadletter import dead_letter_part
from pydantic import JsonValue

from .control import JobControl
from .core import Task, TaskError, failure_fate, parse_task
from .metrics import WorkerMetrics
from .parking import Parking
from .runner import RunContext, failure_text, run_task, scratch_name
from .store import OutcomeStore

log = logging.getLogger(__name__)

Key = tuple[str, str, int]


@dataclass
class _Worked:
    """What became of one message's items."""

    delivery: Delivery[WorkItemBatch]
    done: list[Key] = field(default_factory=list)
    #: (index, payload, reason) of each item that failed
    failed: list[tuple[int, JsonValue, str]] = field(default_factory=list)
    retry_in_s: float | None = None


class ItemWorker:
    """Works the item batches one BatchConsumer hands it, one fetch at a time."""

    def __init__(
        self,
        service: Service,
        store: OutcomeStore,
        spec: ConsumerSpec,
        *,
        scratch_root: Path,
        kill_grace_s: float,
        metrics: WorkerMetrics,
        control: JobControl,
        parking: Parking,
    ) -> None:
        self.control = control
        self.parking = parking
        self.service = service
        self.store = store
        self.spec = spec
        self.scratch_root = scratch_root
        self.kill_grace_s = kill_grace_s
        #: the container engine's Docker API URL, for image tasks (None: none configured)
        self.engine: str | None = None
        self.metrics = metrics
        # the items of a run share one task: parse it once per run, not once per item
        self._task: tuple[dict[str, JsonValue], Task] | None = None

    async def handle(self, batch: Sequence[Delivery[WorkItemBatch]]) -> None:
        """Work the fetch's messages; from the first whose queue is paused on, hold them."""
        if not any([await self._paused(d) for d in batch]):
            await self.work_now(batch)
            return
        worked: list[Delivery[WorkItemBatch]] = []
        for i, d in enumerate(batch):
            if await self._paused(d):
                for rest in batch[i:]:
                    self.parking.park(
                        rest, self.spec, partial(self._paused, rest), partial(self.work_now, [rest])
                    )
                break
            await self.work_now([d])
            worked.append(d)
        for d in worked:
            if not d.msg.is_acked:
                await d.msg.ack()
        raise Deferred(f"{len(batch) - len(worked)} held: their queue is paused")

    async def _paused(self, d: Delivery[WorkItemBatch]) -> bool:
        return await self.control.paused(d.event.namespace, d.event.queue)

    async def work_now(self, batch: Sequence[Delivery[WorkItemBatch]]) -> None:
        """Work the batches' items and record them; the caller acks what is not settled."""
        if not batch:
            return
        keys = [(d.event.namespace, d.event.run_id, i) for d in batch for i in d.event.indices()]
        seen = await self.store.done_items(keys)
        worked: list[_Worked] = []
        beating = asyncio.ensure_future(self._keep_alive(batch))
        try:
            for d in batch:
                worked.append(await self.work(d, seen))
        except asyncio.CancelledError:
            # draining: keep what is done, hand the rest back at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.record_items([k for w in worked for k in w.done]))
                for d in batch:
                    if not d.msg.is_acked:
                        await asyncio.shield(d.msg.nak())
            raise
        finally:
            beating.cancel()
        done = [k for w in worked for k in w.done]
        await self.store.record_items(done)
        self.metrics.items.labels(outcome="completed").inc(len(done))
        for w in worked:
            await self._settle(w)

    async def work(self, d: Delivery[WorkItemBatch], seen: set[Key]) -> _Worked:
        """Run the message's items not yet done; what became of each."""
        items, worked = d.event, _Worked(d)
        try:
            task = self._parsed(items)
        except TaskError as exc:
            reason = f"work items of run {items.run_id!r}: {exc}"
            pairs = zip(items.indices(), items.payloads, strict=True)
            worked.failed = [(i, p, reason) for i, p in pairs]
            return worked
        for index, payload in zip(items.indices(), items.payloads, strict=True):
            key = (items.namespace, items.run_id, index)
            if key in seen:
                self.metrics.items.labels(outcome="already_done").inc()
                continue
            seen.add(key)  # the same item twice in one fetch runs once
            error = await self._run_one(d, task, index, payload)
            if error is None:
                worked.done.append(key)
            else:
                worked.failed.append((index, payload, error))
        if worked.failed:
            fate = failure_fate(task, d.attempt, self.spec)
            if fate.will_retry:
                worked.retry_in_s = fate.delay_s
        return worked

    async def _run_one(
        self, d: Delivery[WorkItemBatch], task: Task, index: int, payload: JsonValue
    ) -> str | None:
        items = d.event
        scratch: Path | None = None
        if task.command is not None:
            name = f"{items.namespace}-{items.run_id}-item{index}-{d.attempt}"
            scratch = self.scratch_root / scratch_name(name)
            scratch.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(
            items.run_id,
            items.job_id,
            items.namespace,
            d.attempt,
            scratch or self.scratch_root,
            item=payload,
            index=index,
        )
        try:
            result = await run_task(task, ctx, grace_s=self.kill_grace_s, engine=self.engine)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        return None if result.ok else failure_text(result)

    async def _settle(self, w: _Worked) -> None:
        """Nak a message whose failed items will run again; dead-letter each failed item on
        its last attempt (the message is then acked with the rest of the fetch)."""
        if not w.failed:
            return
        d = w.delivery
        if w.retry_in_s is not None:
            self.metrics.items.labels(outcome="retried").inc(len(w.failed))
            await d.msg.nak(delay=w.retry_in_s)
            return
        items = d.event
        for index, payload, reason in w.failed:
            one = WorkItemBatch.create(
                occurred_at=items.occurred_at,
                namespace=items.namespace,
                job_id=items.job_id,
                run_id=items.run_id,
                queue=items.queue,
                first=index,
                payloads=[payload],
                task=items.task,
            )
            why = f"item {index} failed {d.attempt} attempt(s): {reason}"
            await dead_letter_part(
                self.service.nc,
                d.msg,
                one.model_dump_json().encode(),
                why,
                part=str(index),
                metrics=self.service.metrics,
            )
        self.metrics.items.labels(outcome="dead_lettered").inc(len(w.failed))

    def _parsed(self, items: WorkItemBatch) -> Task:
        if self._task is not None and self._task[0] == items.task:
            return self._task[1]
        task = parse_task(items.task)
        self._task = (dict(items.task), task)
        return task

    async def _keep_alive(self, batch: Sequence[Delivery[WorkItemBatch]]) -> None:
        """Keep the fetch's deliveries while their items are worked, every third of the ack
        wait."""
        interval = self.spec.ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            for d in batch:
                if not d.msg.is_acked:
                    with contextlib.suppress(Exception):
                        await d.msg.in_progress()
