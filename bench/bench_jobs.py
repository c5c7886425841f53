"""Jobs: the worker-pool's work queue, fan-out enqueueing, and the scheduler's timeliness.

- ``workqueue_items``: no-op work items per second through one worker-pool process (a real
  subprocess, default settings: 4 item pullers of 100, each item validated, checked against
  and recorded in SQLite before its ack). The items are stored first, then the process
  starts; the clock runs from its first delivery until the consumer has nothing pending.
  Baseline: raw ``fetch(100)`` + ``ack`` (``js_pull_fetch100_ack``). Target: ratio >= 0.8.
- ``enqueue_items``: items per second from a run's fan-out context (``FanOut.enqueue``:
  ``WorkItemBatch`` built and validated, published with its dedupe id, acks pipelined). Baseline:
  raw ``publish_async`` (``js_publish_async``). Target: ratio >= 0.8.
- ``schedule_delay_p50_ms``/``schedule_delay_p99_ms``: 10,000 jobs (600 quick) on hourly
  schedules spread over the hour's minutes; the scheduler's firing loop (its ledger in SQLite,
  publishing to JOB_RUNS) on a clock moved by hand from minute to minute; the delay is from the
  moment the clock reaches an occurrence's scheduled time to the server's timestamp of its run
  in the stream. Target: p99 <= 100 ms.
- ``scheduler_idle_cpu_pct``: CPU used by the same loop over 10,000 jobs (600 quick) on the
  system clock while none is due, in % of one core. Target: <= 2 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hms_contracts import specs
from hms_contracts.config import Job
from hms_contracts.runs import RunScheduled, run_id_for
from hms_kit import FakeClock, SystemClock, ensure_stream, provision
from hms_scheduler.adapters import NoActiveRuns, SqliteLedger, StaticJobs
from hms_scheduler.firing import Firing, fire_forever
from hms_worker_pool.fanout import FanOut
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, median_of, percentile, rounded_runs, unique

log = logging.getLogger(__name__)

BENCH = "jobs"
NOOP = "hms_testing.jobtasks:noop"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bench_run(namespace: str = "bench") -> RunScheduled:
    job_id = unique("fan")
    at = T0
    return RunScheduled.create(
        occurred_at=at,
        namespace=namespace,
        job_id=job_id,
        run_id=run_id_for(job_id, at),
        queue="bench_q",
        scheduled_at=at,
        task={"python": NOOP},
    )


async def _drop_streams(js: JetStreamContext, *names: str) -> None:
    for name in names:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)


# --- enqueue ------------------------------------------------------------------------------


async def enqueue_items(nc: Client, count: int) -> float:
    """Items per second through ``FanOut.enqueue`` into a fresh JOB_ITEMS stream."""
    js = nc.jetstream()
    await _drop_streams(js, specs.JOB_ITEMS.name)
    await ensure_stream(js, specs.JOB_ITEMS)
    try:
        fanout = FanOut(js, bench_run(), {"python": NOOP}, T0)
        await fanout.enqueue({"shard": i} for i in range(base.WARMUP))
        await fanout.flush()
        started = time.perf_counter()
        await fanout.enqueue({"shard": i} for i in range(count))
        await fanout.flush()
        return count / (time.perf_counter() - started)
    finally:
        await _drop_streams(js, specs.JOB_ITEMS.name)


# --- work queue ----------------------------------------------------------------------------


@asynccontextmanager
async def worker_process(url: str, state_dir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """One worker-pool process on ``url`` with default settings."""
    env = {
        **os.environ,
        "HMS_WORKER_POOL_NATS_URL": url,
        "HMS_WORKER_POOL_STATE_DIR": str(state_dir),
        "HMS_WORKER_POOL_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hms_worker_pool", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _consumer_state(js: JetStreamContext) -> tuple[int, int]:
    info = await js.consumer_info(specs.JOB_ITEMS.name, specs.WORKER_ITEMS.durable)
    return info.num_pending, info.num_ack_pending


async def _until(done: Callable[[tuple[int, int]], bool], js: JetStreamContext) -> None:
    # polled every 10 ms: the worker process shares the CPU with this one
    while True:
        if done(await _consumer_state(js)):
            return
        await asyncio.sleep(0.01)


async def workqueue_pass(js: JetStreamContext, url: str, state_dir: Path, count: int) -> float:
    """Store ``count`` no-op items, start a worker-pool process, and time from its first
    delivery until none is pending or unacked: items per second."""
    fanout = FanOut(js, bench_run(), {"python": NOOP}, T0)
    await fanout.enqueue({"shard": i} for i in range(count))
    await fanout.flush()
    stored = (await js.stream_info(specs.JOB_ITEMS.name)).state.messages
    async with worker_process(url, state_dir):
        await _until(lambda state: state[0] < stored, js)
        started = time.perf_counter()
        await _until(lambda state: state == (0, 0), js)
        return count / (time.perf_counter() - started)


async def workqueue(ctx: BenchContext, nc: Client) -> Record:
    js = nc.jetstream()
    await _drop_streams(js, specs.JOB_ITEMS.name)
    for stream in (specs.JOB_RUNS, specs.DLQ):
        await ensure_stream(js, stream)
    count = ctx.n(100_000, 10_000)
    with tempfile.TemporaryDirectory(prefix="hms-bench-worker-") as state:
        state_dir = Path(state)
        # as the worker-pool provisions them at its start
        await provision(
            js,
            streams=(specs.JOB_ITEMS, specs.JOB_EVENTS),
            consumers=(specs.WORKER_RUNS, specs.WORKER_ITEMS),
        )
        m = await median_of(ctx.repeats, lambda: workqueue_pass(js, ctx.url, state_dir, count))
    await _drop_streams(js, specs.JOB_ITEMS.name, specs.JOB_EVENTS.name, specs.JOB_RUNS.name)
    return emit(
        BENCH,
        "workqueue_items",
        m.median,
        "items/s",
        n=count,
        runs=rounded_runs(m.runs),
        sync=ctx.sync,
        **ctx.vs(base.JS_PULL_FETCH_ACK, m.median),
    )


# --- scheduler -----------------------------------------------------------------------------


def hourly_jobs(count: int, namespace: str = "bench") -> list[Job]:
    """``count`` jobs on hourly schedules spread over the minutes of the hour."""
    return [
        Job.model_validate(
            {
                "namespace": namespace,
                "name": f"job_{i:05d}",
                "schedule": f"{i % 60} * * * *",
                "queue": "bench_q",
                "python": NOOP,
            }
        )
        for i in range(count)
    ]


async def schedule_delays(nc: Client, count: int, state_dir: Path) -> list[float]:
    """Delays (ms) of every run of ``count`` hourly jobs over one hour of a hand-moved clock."""
    js = nc.jetstream()
    await _drop_streams(js, specs.JOB_RUNS.name)
    await ensure_stream(js, specs.JOB_RUNS)
    start = T0 - timedelta(seconds=1)
    clock = FakeClock(start)
    ledger = SqliteLedger(state_dir / "scheduler.sqlite3")
    firing = Firing(
        js,
        StaticJobs(hourly_jobs(count)),
        ledger,
        NoActiveRuns(),
        clock,
    )
    loop = asyncio.ensure_future(fire_forever(firing, 1.0))
    reached: dict[datetime, float] = {}
    try:
        await asyncio.sleep(0.5)  # the first tick: every job seen, watermarks at `start`
        for minute in range(60):
            at = T0 + timedelta(minutes=minute)
            await clock.set(at)
            reached[at] = time.time()
            # the minute's runs are stored before the clock moves on
            expected = sum(1 for i in range(count) if i % 60 <= minute)
            await asyncio.wait_for(_stored(js, expected), 60)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await ledger.close()
    delays = []
    sub = await js.pull_subscribe("job.run.>", stream=specs.JOB_RUNS.name)
    try:
        got = 0
        while got < count:
            msgs = await sub.fetch(min(1000, count - got), timeout=5)
            for msg in msgs:
                run = RunScheduled.model_validate_json(msg.data)
                stored = msg.metadata.timestamp.timestamp()
                delays.append((stored - reached[run.scheduled_at]) * 1000)
                await msg.ack()  # a reader holds at most max_ack_pending unacked
            got += len(msgs)
    finally:
        await sub.unsubscribe()
        await _drop_streams(js, specs.JOB_RUNS.name)
    return delays


async def _stored(js: JetStreamContext, expected: int) -> None:
    while True:
        if (await js.stream_info(specs.JOB_RUNS.name)).state.messages >= expected:
            return
        await asyncio.sleep(0.002)


async def idle_cpu_pct(nc: Client, count: int, state_dir: Path, seconds: float) -> float:
    """% of one core the firing loop uses while none of ``count`` jobs is due."""
    js = nc.jetstream()
    await ensure_stream(js, specs.JOB_RUNS)
    far = (datetime.now(UTC) + timedelta(days=40)).replace(second=0, microsecond=0)
    jobs = [
        job.model_copy(update={"schedule": f"{far.minute} {far.hour} {far.day} {far.month} *"})
        for job in hourly_jobs(count)
    ]
    ledger = SqliteLedger(state_dir / "idle.sqlite3")
    firing = Firing(
        js,
        StaticJobs(jobs),
        ledger,
        NoActiveRuns(),
        SystemClock(),
    )
    loop = asyncio.ensure_future(fire_forever(firing, 1.0))
    try:
        await asyncio.sleep(2.0)  # the first decisions: every job seen once
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await ledger.close()
        await _drop_streams(js, specs.JOB_RUNS.name)


async def scheduler(ctx: BenchContext, nc: Client) -> list[Record]:
    count = ctx.n(10_000, 600)
    with tempfile.TemporaryDirectory(prefix="hms-bench-scheduler-") as state:
        delays = sorted(await schedule_delays(nc, count, Path(state)))
        cpu = await idle_cpu_pct(nc, count, Path(state), float(ctx.n(10, 2)))
    return [
        emit(BENCH, "schedule_delay_p50_ms", percentile(delays, 50), "ms", n=len(delays)),
        emit(BENCH, "schedule_delay_p99_ms", percentile(delays, 99), "ms", n=len(delays)),
        emit(BENCH, "scheduler_idle_cpu_pct", cpu, "%", n=count),
    ]


async def run(ctx: BenchContext) -> list[Record]:
    async with base.connected(ctx.url) as nc:
        js = nc.jetstream()
        count = ctx.n(100_000, 20_000)
        m = await median_of(ctx.repeats, lambda: enqueue_items(nc, count))
        records = [
            emit(
                BENCH,
                "enqueue_items",
                m.median,
                "items/s",
                n=count,
                runs=rounded_runs(m.runs),
                sync=ctx.sync,
                **ctx.vs(base.JS_PUBLISH_ASYNC, m.median),
            )
        ]
        records.append(await workqueue(ctx, nc))
        records += await scheduler(ctx, nc)
        await _drop_streams(js, specs.DLQ.name)
    return records
