"""The worker loop: pull runs from the ``worker_pool`` durable, run each once, report it on
``job.event.<ns>.*``, record its end before the ack.

Per work item: a run already recorded as ended is acked without running (a redelivery after
a crash between record and ack); otherwise ``RunStarted``, the task (with ``in_progress``
heartbeats so a long run keeps its delivery), then ``RunCompleted``, or ``RunFailed`` and a
nak after the job's backoff, or on the last attempt ``RunFailed``, ``RunDeadLettered`` and the
kit's dead-letter. Events are published before the outcome is recorded: a crash in between
republishes the same deterministic ids, which JetStream and consumers dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from hms_contracts.runs import (
    RunAwaitingApproval,
    RunCancelRequested,
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunScheduled,
    RunStarted,
    WorkItemBatch,
)
from hms_contracts.specs import ConsumerSpec
from hms_kit import Clock, Deferred, Reject, Retry, Service, publish
from hms_kit.consumer import BatchConsumer, Delivery
from nats.aio.msg import Msg
from pydantic import ValidationError

from .control import JobControl
from .core import FailureFate, TaskError, failure_fate, parse_task
from .fanout import ITEMS_FILE, FanOut, FanOutError, items_left
from .items import ItemWorker
from .metrics import WorkerMetrics
from .parking import Parking
from .runner import (
    RunContext,
    TaskResult,
    failure_text,
    reap_orphans,
    run_task,
    scratch_name,
)
from .store import OUTCOMES_FILE, Outcome, OutcomeStore

log = logging.getLogger(__name__)

#: how often a run waiting on its items asks the bus how many are left, seconds
POLL_MIN_S = 0.05
POLL_MAX_S = 1.0


class Worker:
    """Runs the work items one BatchConsumer hands it, one at a time."""

    def __init__(
        self,
        service: Service,
        store: OutcomeStore,
        clock: Clock,
        spec: ConsumerSpec,
        *,
        scratch_root: Path,
        kill_grace_s: float,
        metrics: WorkerMetrics,
        control: JobControl,
        parking: Parking,
        progress_interval_s: float = 1.0,
    ) -> None:
        self.control = control
        self.parking = parking
        #: the task of each run under way, by (namespace, run_id), and why one was cancelled
        self.running: dict[tuple[str, str], asyncio.Future[TaskResult]] = {}
        self.cancel_reasons: dict[tuple[str, str], str] = {}
        self.metrics = metrics
        self.progress_interval_s = progress_interval_s
        self.service = service
        self.store = store
        self.clock = clock
        self.spec = spec
        self.scratch_root = scratch_root
        self.kill_grace_s = kill_grace_s
        #: the container engine's Docker API URL, for image tasks (None: none configured)
        self.engine: str | None = None

    async def handle(self, batch: Sequence[Delivery[RunScheduled]]) -> None:
        for delivery in batch:
            if await self.held(delivery, announce=True):
                self.parking.park(
                    delivery,
                    self.spec,
                    partial(self.held, delivery),
                    partial(self.run_one, delivery),
                )
                raise Deferred("held: its queue is paused or it awaits approval")
            await self.run_one(delivery)

    async def on_cancel(self, msg: Msg) -> None:
        """A RunCancelRequested: stop the run if this process runs it."""
        try:
            asked = RunCancelRequested.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("ignored an invalid cancel request on %s: %s", msg.subject, exc)
            return
        key = (asked.namespace, asked.run_id)
        inner = self.running.get(key)
        if inner is None or inner.done():
            return
        log.info("run %s: cancel requested (%s)", asked.run_id, asked.reason)
        self.cancel_reasons[key] = f"cancelled: {asked.reason}"
        inner.cancel()

    async def held(self, d: Delivery[RunScheduled], *, announce: bool = False) -> bool:
        """Whether the run must wait: its queue is paused, or it awaits approval (announced
        once with RunAwaitingApproval). A run that already ended is never held."""
        run = d.event
        if await self.store.get(run.namespace, run.run_id) is not None:
            return False
        if await self.control.paused(run.namespace, run.queue):
            return True
        if run.task.get("approval") is not True:
            return False
        if await self.control.approved(run.namespace, run.run_id):
            return False
        if announce:
            await self._emit(
                RunAwaitingApproval.create(
                    occurred_at=self.clock.now(),
                    namespace=run.namespace,
                    job_id=run.job_id,
                    run_id=run.run_id,
                    queue=run.queue,
                    deadline=run.deadline,
                )
            )
        return True

    async def _emit(
        self,
        event: RunAwaitingApproval
        | RunStarted
        | RunProgressed
        | RunCompleted
        | RunFailed
        | RunDeadLettered,
    ) -> None:
        await publish(self.service.js, event)

    async def run_one(self, d: Delivery[RunScheduled]) -> None:
        run = d.event
        ended = await self.store.get(run.namespace, run.run_id)
        if ended is not None:
            log.info(
                "run %s/%s already %s; acking its redelivery", run.namespace, run.run_id, ended
            )
            self.metrics.runs.labels(outcome="already_ended").inc()
            return
        facts = {"namespace": run.namespace, "job_id": run.job_id, "run_id": run.run_id}
        facts["queue"] = run.queue
        attempt = d.attempt
        try:
            task = parse_task(run.task)
        except TaskError as exc:
            await self._give_up(d, facts, f"run {run.run_id!r}: {exc}", attempt)
            return
        await self._emit(
            RunStarted.create(
                occurred_at=self.clock.now(),
                worker_id=self.service.instance_id,
                attempt=attempt,
                **facts,
            )
        )
        started = self.clock.monotonic()
        # two namespaces may run the same job id at the same instant
        scratch = self.scratch_root / scratch_name(f"{run.namespace}-{run.run_id}-{attempt}")
        scratch.mkdir(parents=True, exist_ok=True)
        fanout = FanOut(self.service.js, run, run.task, self.clock.now())
        ctx = RunContext(run.run_id, run.job_id, run.namespace, attempt, scratch, fanout=fanout)
        beating = asyncio.ensure_future(self._keep_alive(d))
        self.metrics.running.inc()
        key = (run.namespace, run.run_id)

        async def execute() -> TaskResult:
            result = await run_task(task, ctx, grace_s=self.kill_grace_s, engine=self.engine)
            if result.ok and task.command is not None:
                await fanout.enqueue_file(scratch / ITEMS_FILE)
            if result.ok and await fanout.flush():
                result = await self._await_items(run, facts, fanout.count, fanout.batch)
            return result

        inner = asyncio.ensure_future(execute())
        self.running[key] = inner
        try:
            result = await inner
        except FanOutError as exc:
            result = TaskResult(ok=False, error=str(exc))
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if key in self.cancel_reasons and (me is None or me.cancelling() == 0):
                # asked to stop (overlap: replace); the task stopped its process group
                reason = self.cancel_reasons.pop(key)
                result = TaskResult(ok=False, error=reason, cancelled=True)
            else:
                # draining: hand the run back at once rather than after the ack wait
                inner.cancel()
                log.info("run %s interrupted by shutdown; nakked", run.run_id)
                with contextlib.suppress(Exception):
                    await asyncio.shield(d.msg.nak())
                raise
        finally:
            self.running.pop(key, None)
            beating.cancel()
            self.metrics.running.dec()
            self.metrics.duration.observe(max(self.clock.monotonic() - started, 0.0))
            shutil.rmtree(scratch, ignore_errors=True)
        if result.ok:
            await self._emit(
                RunCompleted.create(
                    occurred_at=self.clock.now(),
                    items=fanout.count or run.items,
                    duration_s=max(self.clock.monotonic() - started, 0.0),
                    **facts,
                )
            )
            await self._record(run, "completed", attempt, "")
            self.metrics.runs.labels(outcome="completed").inc()
            return
        if result.cancelled:
            await self._emit(
                RunFailed.create(
                    occurred_at=self.clock.now(),
                    error=result.error,
                    attempt=attempt,
                    will_retry=False,
                    **facts,
                )
            )
            await self._record(run, "cancelled", attempt, result.error)
            self.metrics.runs.labels(outcome="cancelled").inc()
            return
        # items dead-lettered stay dead-lettered: another attempt would fail on them again
        fate = FailureFate(False) if result.items_failed else failure_fate(task, attempt, self.spec)
        error = failure_text(result)
        if fate.will_retry:
            await self._emit(
                RunFailed.create(
                    occurred_at=self.clock.now(),
                    error=error,
                    attempt=attempt,
                    will_retry=True,
                    retry_in_s=fate.delay_s,
                    **facts,
                )
            )
            self.metrics.runs.labels(outcome="retried").inc()
            raise Retry(result.error, delay_s=fate.delay_s)
        await self._emit(
            RunFailed.create(
                occurred_at=self.clock.now(),
                error=error,
                attempt=attempt,
                will_retry=False,
                **facts,
            )
        )
        await self._give_up(d, facts, result.error, attempt)

    async def _give_up(
        self, d: Delivery[RunScheduled], facts: dict[str, str], reason: str, attempt: int
    ) -> None:
        reason = reason[:1000] or "failed"
        await self._emit(
            RunDeadLettered.create(
                occurred_at=self.clock.now(), reason=reason, attempts=attempt, **facts
            )
        )
        await self._record(d.event, "dead_lettered", attempt, reason)
        self.metrics.runs.labels(outcome="dead_lettered").inc()
        raise Reject(reason)

    async def _record(self, run: RunScheduled, outcome: str, attempts: int, detail: str) -> None:
        await self.store.record(
            Outcome(run.namespace, run.run_id, outcome, attempts, detail, self.clock.now())
        )

    async def _await_items(
        self, run: RunScheduled, facts: dict[str, str], total: int, per_batch: int
    ) -> TaskResult:
        """Wait until every item of the run is done or dead-lettered, reporting progress at
        most once per ``progress_interval_s``; ok when none was dead-lettered. The bus counts
        the batches left, so progress is at least ``done`` (exact once none is left)."""
        reported = -1
        last = float("-inf")
        poll = POLL_MIN_S
        while True:
            left, failed = await items_left(self.service.js, run)
            done = total - min(total, left * per_batch)
            now = self.clock.monotonic()
            if done != reported and (left == 0 or now - last >= self.progress_interval_s):
                await self._emit(
                    RunProgressed.create(
                        occurred_at=self.clock.now(), done=done, total=total, **facts
                    )
                )
                reported, last = done, now
            if left == 0:
                break
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, POLL_MAX_S)
        if failed:
            return TaskResult(
                ok=False,
                error=f"{failed} of {total} work items dead-lettered "
                "(hms-ops dlq list shows them with their reasons)",
                items_failed=failed,
            )
        return TaskResult(ok=True)

    async def _keep_alive(self, d: Delivery[RunScheduled]) -> None:
        """Tell JetStream the run is still being worked on, every third of the ack wait."""
        interval = self.spec.ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await d.msg.in_progress()


async def work(
    service: Service,
    spec: ConsumerSpec,
    clock: Clock,
    *,
    concurrency: int,
    kill_grace_s: float,
    items_spec: ConsumerSpec | None = None,
    items_batch: int = 10,
    engine: str | None = None,
) -> None:
    """The worker-pool's loop: ``concurrency`` run pullers, each one run at a time, and as
    many item pullers, each a batch of items at a time."""
    settings = service.settings
    store = await OutcomeStore.open(settings.state_dir / OUTCOMES_FILE)
    metrics = WorkerMetrics(service.metrics.registry)
    scratch_root = settings.state_dir / "runs"
    reap_orphans(scratch_root)
    control = JobControl(service.js, clock)
    parking = Parking(service, concurrency)
    worker = Worker(
        service,
        store,
        clock,
        spec,
        scratch_root=scratch_root,
        kill_grace_s=kill_grace_s,
        metrics=metrics,
        control=control,
        parking=parking,
    )
    worker.engine = engine
    consumers: list[BatchConsumer[RunScheduled] | BatchConsumer[WorkItemBatch]] = [
        BatchConsumer.for_service(service, spec, RunScheduled, worker.handle, batch=1)
        for _ in range(concurrency)
    ]
    if items_spec is not None:
        items = ItemWorker(
            service,
            store,
            items_spec,
            scratch_root=scratch_root,
            kill_grace_s=kill_grace_s,
            metrics=metrics,
            control=control,
            parking=parking,
        )
        items.engine = engine
        consumers += [
            BatchConsumer.for_service(
                service, items_spec, WorkItemBatch, items.handle, batch=items_batch
            )
            for _ in range(concurrency)
        ]
    cancels = await service.nc.subscribe(RunCancelRequested.subject_pattern(), cb=worker.on_cancel)
    try:
        await asyncio.gather(*(c.run() for c in consumers))
    finally:
        await cancels.unsubscribe()
        await parking.close()
        await store.close()
