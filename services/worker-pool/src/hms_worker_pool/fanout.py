"""Fan-out: a run enqueues work items, and is complete when every one of them is done.

Items travel in batches: a :class:`~hms_contracts.WorkItemBatch` (up to 100 items) on
``job.item.<ns>.<queue>.<run_key>`` (one subject per run) in the work-queue stream
``JOB_ITEMS``, with the deterministic id ``namespace|run_id|items|first`` as ``Nats-Msg-Id``: a
redelivered run that enqueues again is deduplicated. Publishes are pipelined (``publish_async``,
a window of acks in flight), never one awaited ack per batch.

The bus keeps the count: a batch leaves ``JOB_ITEMS`` when a worker acks it (its items done or
dead-lettered), and a dead-lettered item lands first on ``dlq.<its subject>``. So what is left of
a run is the stream's count on its subject (batches), and what failed is the DLQ's count on the
dead-letter subject; no worker needs to know which other worker did an item.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from hms_contracts import specs, subjects
from hms_contracts.runs import RunScheduled, WorkItemBatch, run_key
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import JsonValue

#: items per stored message, at most
BATCH = 100
#: payload bytes per stored message, at most (the stream takes up to 1 MiB)
BATCH_BYTES = 256 * 1024
#: batches whose store acks may be in flight at once while enqueueing
WINDOW = 200
#: what a command run writes its items to, one JSON value per line (``$HMS_ITEMS_FILE``)
ITEMS_FILE = "items.jsonl"


class FanOutError(ValueError):
    """Items cannot be enqueued as given (a malformed line, enqueueing from an item)."""


class FanOut:
    """The enqueueing side of one run: ``await enqueue(payloads)`` from the run's task.

    Items travel in batches (``WorkItemBatch``, up to ``batch`` items and ``max_bytes`` of
    payload each): one stored message and one ack for many items, as every hot path on the
    bus does. The split depends only on the items' order, sizes and tasks, so a run that
    enqueues the same items again produces the same batches, with the same ids.
    """

    def __init__(
        self,
        js: JetStreamContext,
        run: RunScheduled,
        task: dict[str, JsonValue],
        now: datetime,
        *,
        batch: int = BATCH,
        max_bytes: int = BATCH_BYTES,
        window: int = WINDOW,
    ) -> None:
        self.js = js
        self.run = run
        self.task = task
        self.now = now
        self.batch = batch
        self.max_bytes = max_bytes
        self.window = window
        #: items enqueued so far (the next one's index)
        self.count = 0
        self.loop = asyncio.get_running_loop()
        self._pending: list[asyncio.Future[PubAck]] = []
        self._lock = asyncio.Lock()
        self._items: list[JsonValue] = []
        self._bytes = 0
        self._task = task

    @property
    def subject(self) -> str:
        """The subject every item of this run goes to."""
        return item_subject(self.run)

    async def enqueue(self, payloads: Iterable[JsonValue], *, python: str | None = None) -> int:
        """Enqueue one work item per payload, in order; returns how many the run has so far.

        Each item runs the run's own task (its function gets the payload as ``ctx.item``), or
        ``python`` (``package.module:function``) when given. Full batches are published as
        they fill; the rest when the run's task returns (:meth:`flush`).
        """
        task = self.task if python is None else {**self.task, "python": python, "command": None}
        task = {k: v for k, v in task.items() if v is not None}
        async with self._lock:
            if self._items and task != self._task:
                await self._publish()
            self._task = task
            for payload in payloads:
                size = len(json.dumps(payload))
                if self._items and (
                    len(self._items) >= self.batch or self._bytes + size > self.max_bytes
                ):
                    await self._publish()
                self._items.append(payload)
                self._bytes += size
                self.count += 1
        return self.count

    def enqueue_blocking(self, payloads: Iterable[JsonValue], *, python: str | None = None) -> int:
        """:meth:`enqueue` for a plain (thread) function."""
        return asyncio.run_coroutine_threadsafe(
            self.enqueue(payloads, python=python), self.loop
        ).result()

    async def flush(self) -> int:
        """Publish what is buffered and wait until every batch is stored; the item count."""
        async with self._lock:
            if self._items:
                await self._publish()
            await self._settle()
        return self.count

    async def _publish(self) -> None:
        items, self._items, self._bytes = self._items, [], 0
        batch = WorkItemBatch.create(
            occurred_at=self.now,
            namespace=self.run.namespace,
            job_id=self.run.job_id,
            run_id=self.run.run_id,
            queue=self.run.queue,
            first=self.count - len(items),
            payloads=items,
            task=self._task,
        )
        self._pending.append(
            await self.js.publish_async(
                batch.subject(),
                batch.model_dump_json().encode(),
                headers={"Nats-Msg-Id": batch.event_id},
            )
        )
        if len(self._pending) >= self.window:
            await self._settle()

    async def _settle(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.wait_for(asyncio.gather(*pending), 30)

    async def enqueue_file(self, path: Path) -> int:
        """Enqueue the items a command wrote to ``path``, one JSON value per line (blank
        lines skipped); FanOutError names the line that is not JSON, and nothing is enqueued."""
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return self.count
        payloads: list[JsonValue] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                payloads.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FanOutError(
                    f"{ITEMS_FILE} line {number} is not a JSON value: {exc.msg}"
                ) from None
        return await self.enqueue(payloads)


def item_subject(run: RunScheduled) -> str:
    """``job.item.<ns>.<queue>.<run_key>``: where the run's items go."""
    return subjects.JOB_ITEM.subject(
        run.namespace, f"{run.queue}.{run_key(run.namespace, run.run_id)}"
    )


async def count_on(js: JetStreamContext, stream: str, subject: str) -> int:
    """How many messages ``stream`` holds on exactly ``subject``."""
    info = await js.stream_info(stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def items_left(js: JetStreamContext, run: RunScheduled) -> tuple[int, int]:
    """(batches not yet done, dead letters) of ``run``, as the bus counts them."""
    subject = item_subject(run)
    left = await count_on(js, specs.JOB_ITEMS.name, subject)
    failed = await count_on(js, specs.DLQ.name, subjects.dlq(subject))
    return left, failed
