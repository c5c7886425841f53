"""The autoscaler with its local backend: how fast a backlog gets a worker, and how still a pool
stays under a noisy steady load.

- ``reaction_p50_s`` / ``reaction_p99_s``: a pool at 0 workers (min 0, max 5, poll interval
  1 s); a backlog of 20 items appears; the time until the first RunStarted of the first
  worker started for it (fork from the preloaded server, connect, pull). 20 trials (4 in quick
  mode), each after the pool is back at 0. Target: p99 at most 2 s (KEDA polls every 30 s by
  default, the HPA syncs every 15 s). Baseline: the poll interval (1 s), the wait a pure poller
  could add before it even saw the backlog.
- ``noisy_scale_events``: a gateway's rate series at 150 with +/- 20 % noise every 100 ms for
  2 minutes (6 s in quick mode) on a pool scaled by that trigger (50 per worker, 30 s average)
  with the HPA's default tolerance and windows: the scale events the pool saw, the first (from
  0 to what the first samples ask for) included. Target: 1, none beyond the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hms_autoscaler.local import LocalWorkers
from hms_autoscaler.scaling import Autoscaler
from hms_contracts import specs, subjects
from hms_contracts.config import Job, ScalePolicy
from hms_contracts.metrics import MetricSample, MetricSampleBatch
from hms_kit import SystemClock, ensure_consumer, ensure_stream, publish, publish_many
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, percentile, rounded_runs, unique

log = logging.getLogger(__name__)

BENCH = "autoscaler"
ROOT = Path(__file__).resolve().parent.parent
POLL_S = 1.0
CONSUMER = specs.WORKER_RUNS.model_copy(update={"ack_wait_s": 10.0, "backoff_s": ()})


def _policy(ns: str, **fields: Any) -> ScalePolicy:
    doc: dict[str, Any] = {"namespace": ns, "name": "pool", "min": 0, "max": 5}
    return ScalePolicy.model_validate(doc | fields)


def _items(ns: str, count: int, trial: int) -> list[Any]:
    job = Job.model_validate(
        {"namespace": ns, "name": "bench", "schedule": "0 0 * * *", "queue": "q"}
        | {"python": "bench._scalework:work"}
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=trial)
    return [job.run_at(t0 + timedelta(seconds=i), datetime.now(UTC)) for i in range(count)]


#: the streams a run of this bench creates, and removes when it ends: the run's server is
#: shared with the other benches, which make streams of their own on some of these subjects
STREAMS = (specs.JOB_RUNS, specs.JOB_EVENTS, specs.SCALE, specs.ALERTS, specs.METRICS)


async def _fresh(nc: Client) -> None:
    js = nc.jetstream()
    await _remove(nc)
    for stream in STREAMS:
        await ensure_stream(js, stream)
    await ensure_consumer(js, CONSUMER)


async def _remove(nc: Client) -> None:
    for stream in STREAMS:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream.name)


def _backend(state: Path, url: str) -> LocalWorkers:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env |= {
        "HMS_WORKER_POOL_ACK_WAIT_S": str(CONSUMER.ack_wait_s),
        "HMS_WORKER_POOL_CONCURRENCY": "2",
        "HMS_WORKER_POOL_LOG_FORMAT": "json",
        "HMS_WORKER_POOL_HEARTBEAT_INTERVAL_S": "5",
    }
    return LocalWorkers(state, nats_url=url, base_env=env, drain_s=5.0)


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench autoscaler: {what} within {timeout:g} s")
        await asyncio.sleep(0.02)


async def reaction(url: str, trials: int) -> list[float]:
    """Seconds from a backlog appearing to the first worker's first RunStarted, per trial."""
    ns = unique("bench_as")
    policy = _policy(
        ns,
        poll_interval=f"{POLL_S:g}s",
        idle_to_zero_after="1s",
        scale_down={"stabilization": "1s"},
    )
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="hms-bench-as-") as tmp:
        backend = _backend(Path(tmp), url)
        async with base.connected(url) as nc:
            await _fresh(nc)
            scaler = Autoscaler(nc, lambda: [policy], {"local": backend}, SystemClock())
            running = asyncio.ensure_future(scaler.run())
            try:
                # an autoscaler that is up: leading, its fork server warm, the pool decided
                await _wait(lambda: any(p.last for p in scaler.pools.values()), 60, "ready")
                await backend.warm()
                for trial in range(trials):
                    await _wait(lambda: not backend.all_workers(), 60, "the pool back at 0")
                    await asyncio.sleep(0.3)  # a poll or two at 0, as a pool idles
                    times.append(await _trial(nc, f"{ns}_t{trial}", trial))
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                _kill(backend)
    return times


async def _trial(nc: Client, ns: str, trial: int) -> float:
    """One backlog of 20 items in a namespace of its own: seconds to the first RunStarted;
    returns once every item completed (each run counted once, whatever redeliveries say)."""
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    completed: set[str] = set()

    async def on_event(msg: Any) -> None:
        if msg.subject.endswith(".started") and not first.done():
            first.set_result(time.perf_counter())
        elif msg.subject.endswith(".completed"):
            completed.add(json.loads(msg.data)["run_id"])

    sub = await nc.subscribe(subjects.JOB_EVENT.wildcard(ns), cb=on_event)
    try:
        items = _items(ns, 20, trial)
        t0 = time.perf_counter()
        await publish_many(nc.jetstream(), items)
        seconds = await asyncio.wait_for(first, 30) - t0
        await _wait(lambda: len(completed) >= len(items), 60, "the items done")
        return seconds
    finally:
        await sub.unsubscribe()


async def noisy(url: str, seconds: float) -> int:
    """Scale events of a pool driven by a noisy steady rate series."""
    ns = unique("bench_noisy")
    trigger = {"series": "gateway.request_rate", "threshold": 50, "window": "30s"}
    policy = _policy(ns, triggers=[trigger])  # the HPA's defaults: 10 %, 0 s up, 5 min down
    events: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hms-bench-noisy-") as tmp:
        backend = _backend(Path(tmp), url)
        async with base.connected(url) as nc:
            await _fresh(nc)
            scaler = Autoscaler(nc, lambda: [policy], {"local": backend}, SystemClock())

            async def on_scale(msg: Any) -> None:
                if b'"action":"hold"' not in msg.data:
                    events.append(msg.data.decode())

            await nc.subscribe(subjects.SCALE.wildcard(ns), cb=on_scale)
            rng = random.Random(7)

            async def sample() -> None:
                now = datetime.now(UTC)
                value = 150.0 * (1 + rng.uniform(-0.2, 0.2))
                batch = MetricSampleBatch.create(
                    namespace=ns,
                    occurred_at=now,
                    source="gateway",
                    origin="push",
                    samples=[
                        MetricSample(name="gateway.request_rate", value=value, observed_at=now)
                    ],
                )
                await publish(nc.jetstream(), batch)

            await sample()
            running = asyncio.ensure_future(scaler.run())
            try:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    await sample()
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.2)
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                _kill(backend)
    for event in events:
        log.info("noisy load scale event: %s", event)
    return len(events)


def _kill(backend: LocalWorkers) -> None:
    for worker in backend.all_workers():
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)


def _vs(seconds: float) -> dict[str, float | None]:
    """Against the policy's poll interval: what a pure poller could add before it even saw the
    backlog (below 1: the wake-up on new work answered before a poll would have)."""
    return {"baseline": POLL_S, "ratio": round(seconds / POLL_S, 3)}


async def run(ctx: BenchContext) -> list[Record]:
    async with base.connected(ctx.url) as nc:
        before = {i.config.name for i in await nc.jetstream().streams_info()}
    try:
        return await _figures(ctx)
    finally:
        # ours, and the shared ones the workers made (as services without an admin do)
        async with base.connected(ctx.url) as nc:
            await _remove(nc)
            for info in await nc.jetstream().streams_info():
                name = info.config.name
                if name is not None and name not in before:
                    await nc.jetstream().delete_stream(name)


async def _figures(ctx: BenchContext) -> list[Record]:
    trials = ctx.n(20, 4)
    times = sorted(await reaction(ctx.url, trials))
    p50, p99 = statistics.median(times), percentile(times, 99)
    records = [
        emit(BENCH, "reaction_p50_s", p50, "s", n=trials, runs=rounded_runs(times), **_vs(p50)),
        emit(BENCH, "reaction_p99_s", p99, "s", n=trials, target=2.0, **_vs(p99)),
    ]
    seconds = 6.0 if ctx.quick else 120.0
    count = await noisy(ctx.url, seconds)
    records.append(emit(BENCH, "noisy_scale_events", count, "events", duration_s=seconds, target=1))
    return records
