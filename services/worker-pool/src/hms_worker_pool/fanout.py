"""Fan-out: a run enqueues work items, and is complete when every one of them is done.

Each item is a :class:`~hms_contracts.WorkItem` on ``job.item.<ns>.<queue>.<run_key>`` (one
subject per run) in the work-queue stream ``JOB_ITEMS``, with the deterministic id
``namespace|run_id|item|index`` as ``Nats-Msg-Id``: a redelivered run that enqueues again is
deduplicated. Publishes are pipelined (``publish_async``, a window of acks in flight), never one
awaited ack per item.

The bus keeps the count: an item leaves ``JOB_ITEMS`` when a worker acks it (done) or terms it
into the dead-letter stream, where it lands first on ``dlq.<its subject>``. So what is left of a
run is the stream's count on its subject, and what failed is the DLQ's count on the dead-letter
subject; no worker needs to know which other worker did an item.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from hms_contracts import specs, subjects
from hms_contracts.runs import RunScheduled, WorkItem, run_key
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import JsonValue

#: publish acks in flight at once while enqueueing
WINDOW = 2000
#: what a command run writes its items to, one JSON value per line (``$HMS_ITEMS_FILE``)
ITEMS_FILE = "items.jsonl"


class FanOutError(ValueError):
    """Items cannot be enqueued as given (a malformed line, enqueueing from an item)."""


class FanOut:
    """The enqueueing side of one run: ``await enqueue(payloads)`` from the run's task."""

    def __init__(
        self,
        js: JetStreamContext,
        run: RunScheduled,
        task: dict[str, JsonValue],
        now: datetime,
        *,
        window: int = WINDOW,
    ) -> None:
        self.js = js
        self.run = run
        self.task = task
        self.now = now
        self.window = window
        #: items enqueued so far; the next one's index
        self.count = 0
        self.loop = asyncio.get_running_loop()
        self._pending: list[asyncio.Future[PubAck]] = []
        self._lock = asyncio.Lock()

    @property
    def subject(self) -> str:
        """The subject every item of this run goes to."""
        return item_subject(self.run)

    async def enqueue(self, payloads: Iterable[JsonValue], *, python: str | None = None) -> int:
        """Enqueue one work item per payload, in order; returns how many the run has so far.

        Each item runs the run's own task (its function gets the payload as ``ctx.item``), or
        ``python`` (``package.module:function``) when given. The items are stored in JetStream
        when this returns.
        """
        task = self.task if python is None else {**self.task, "python": python, "command": None}
        task = {k: v for k, v in task.items() if v is not None}
        async with self._lock:
            for payload in payloads:
                item = WorkItem.create(
                    occurred_at=self.now,
                    namespace=self.run.namespace,
                    job_id=self.run.job_id,
                    run_id=self.run.run_id,
                    queue=self.run.queue,
                    index=self.count,
                    payload=payload,
                    task=task,
                )
                self.count += 1
                self._pending.append(
                    await self.js.publish_async(
                        item.subject(),
                        item.model_dump_json().encode(),
                        headers={"Nats-Msg-Id": item.event_id},
                    )
                )
                if len(self._pending) >= self.window:
                    await self._settle()
            await self._settle()
        return self.count

    def enqueue_blocking(self, payloads: Iterable[JsonValue], *, python: str | None = None) -> int:
        """:meth:`enqueue` for a plain (thread) function: blocks until the items are stored."""
        return asyncio.run_coroutine_threadsafe(
            self.enqueue(payloads, python=python), self.loop
        ).result()

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
    """(items not yet done, items dead-lettered) of ``run``, as the bus counts them."""
    subject = item_subject(run)
    left = await count_on(js, specs.JOB_ITEMS.name, subject)
    failed = await count_on(js, specs.DLQ.name, subjects.dlq(subject))
    return left, failed
