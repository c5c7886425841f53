"""Raw nats-py baselines: what the bus does with no framework on top.

Every other bench compares its figure with these, measured on the same server in the same run.
The metric names are the keys of ``ctx.baselines``; import the constants rather than retyping them.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.js import JetStreamContext

from bench._common import BenchContext, Record, emit, median_of, percentile, rounded_runs, unique

log = logging.getLogger(__name__)

BENCH = "nats_baseline"
CORE_PUBSUB = "core_pubsub"
JS_PUBLISH_ASYNC = "js_publish_async"
JS_PUBLISH_SYNC = "js_publish_sync"
JS_PULL_FETCH_ACK = "js_pull_fetch100_ack"
REQREP_P50 = "reqrep_p50"
REQREP_P99 = "reqrep_p99"

PAYLOAD = b"x" * 100  # every figure here is for 100-byte payloads
FETCH_BATCH = 100
WARMUP = 100


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[NATS]:
    nc = await nats.connect(url, name="hms-bench", allow_reconnect=False)
    try:
        yield nc
    finally:
        await nc.drain()


@asynccontextmanager
async def temp_stream(js: JetStreamContext, prefix: str) -> AsyncIterator[str]:
    """A fresh file-backed stream on ``<name>.>``; yields the subject to publish to."""
    name = unique(prefix)
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    try:
        yield f"{name}.m"
    finally:
        await js.delete_stream(name)


async def core_pubsub(url: str, count: int) -> float:
    """Publisher and callback subscriber on two connections; msgs/s until the last one lands."""
    async with connected(url) as sub_nc, connected(url) as pub_nc:
        subject = unique("bench.core")
        done = asyncio.Event()
        received = 0

        async def on_msg(msg: Msg) -> None:
            nonlocal received
            received += 1
            if received == count:
                done.set()

        await sub_nc.subscribe(subject, cb=on_msg)
        await sub_nc.flush()  # the SUB is on the server before the first PUB
        start = time.perf_counter()
        for _ in range(count):
            await pub_nc.publish(subject, PAYLOAD)
        await pub_nc.flush()
        try:
            await asyncio.wait_for(done.wait(), timeout=60)
        except TimeoutError:
            raise RuntimeError(f"core pub/sub: {received} of {count} arrived") from None
        return count / (time.perf_counter() - start)


async def js_publish_async(url: str, count: int) -> float:
    """Pipelined JetStream publish (``js.publish_async``), every ack collected."""
    async with connected(url) as nc:
        js = nc.jetstream()
        async with temp_stream(js, "BENCH_PA") as subject:
            await asyncio.gather(*[await js.publish_async(subject, PAYLOAD) for _ in range(WARMUP)])
            start = time.perf_counter()
            futures = [await js.publish_async(subject, PAYLOAD) for _ in range(count)]
            await asyncio.gather(*futures)  # raises if any publish was refused
            return count / (time.perf_counter() - start)


async def js_publish_sync(url: str, count: int) -> float:
    """One awaited ack at a time: the anti-pattern the architecture warns about."""
    async with connected(url) as nc:
        js = nc.jetstream()
        async with temp_stream(js, "BENCH_PS") as subject:
            for _ in range(WARMUP):
                await js.publish(subject, PAYLOAD)
            start = time.perf_counter()
            for _ in range(count):
                await js.publish(subject, PAYLOAD)
            return count / (time.perf_counter() - start)


async def js_pull_fetch_ack(url: str, count: int) -> float:
    """Drain a pre-filled stream with a durable pull consumer, ``fetch(100)``, ack each."""
    async with connected(url) as nc:
        js = nc.jetstream()
        async with temp_stream(js, "BENCH_PF") as subject:
            await asyncio.gather(*[await js.publish_async(subject, PAYLOAD) for _ in range(count)])
            psub = await js.pull_subscribe(subject, durable="bench", stream=subject.split(".")[0])
            got = 0
            start = time.perf_counter()
            while got < count:
                msgs = await psub.fetch(FETCH_BATCH, timeout=5)
                for msg in msgs:
                    await msg.ack()  # buffered publish to the reply subject, no round trip
                got += len(msgs)
            await nc.flush()
            elapsed = time.perf_counter() - start
            await _wait_acked(psub, count)
            await psub.unsubscribe()
            return got / elapsed


async def _wait_acked(psub: JetStreamContext.PullSubscription, count: int) -> None:
    """Outside the timing: every ack reached the server (otherwise the figure is a lie)."""
    deadline = time.monotonic() + 10
    while True:
        info = await psub.consumer_info()
        floor = info.ack_floor.stream_seq if info.ack_floor else None
        if info.num_ack_pending == 0 and floor == count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"pull consumer: {info.num_ack_pending} acks pending, ack floor {floor} of {count}"
            )
        await asyncio.sleep(0.05)


async def _until_answered(nc: NATS, subject: str, within: float = 5.0) -> None:
    """Outside the timing: on a loaded machine the server has been seen to answer "no
    responders" for a moment after the responder's SUB was flushed; wait that out."""
    deadline = time.monotonic() + within
    while True:
        try:
            await nc.request(subject, PAYLOAD, timeout=2)
            return
        except NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def reqrep_latency(url: str, count: int) -> tuple[float, float]:
    """Sequential core-NATS requests to one responder; (p50, p99) in microseconds."""
    async with connected(url) as rep_nc, connected(url) as req_nc:
        subject = unique("bench.rr")

        async def respond(msg: Msg) -> None:
            await msg.respond(PAYLOAD)

        await rep_nc.subscribe(subject, cb=respond)
        await rep_nc.flush()
        await _until_answered(req_nc, subject)
        for _ in range(WARMUP):
            await req_nc.request(subject, PAYLOAD, timeout=2)
        lat: list[float] = []
        for _ in range(count):
            t0 = time.perf_counter_ns()
            await req_nc.request(subject, PAYLOAD, timeout=2)
            lat.append((time.perf_counter_ns() - t0) / 1000)
        lat.sort()
        return percentile(lat, 50), percentile(lat, 99)


async def run(ctx: BenchContext) -> list[Record]:
    out: list[Record] = []
    reps = ctx.repeats
    js_extra = {"sync": ctx.sync}

    async def throughput(
        metric: str, fn: Callable[[str, int], Awaitable[float]], n: int, **extra: Any
    ) -> None:
        log.info("baseline %s: %d x %d msgs", metric, reps, n)
        m = await median_of(reps, lambda: fn(ctx.url, n))
        ctx.baselines[metric] = m.median
        out.append(emit(BENCH, metric, m.median, "msg/s", n=n, runs=rounded_runs(m.runs), **extra))

    await throughput(CORE_PUBSUB, core_pubsub, ctx.n(200_000, 50_000))
    await throughput(JS_PUBLISH_ASYNC, js_publish_async, ctx.n(30_000, 5_000), **js_extra)
    await throughput(JS_PUBLISH_SYNC, js_publish_sync, ctx.n(5_000, 1_000), **js_extra)
    await throughput(JS_PULL_FETCH_ACK, js_pull_fetch_ack, ctx.n(30_000, 5_000), **js_extra)

    n = ctx.n(5_000, 2_000)
    log.info("baseline request/reply: %d x %d requests", reps, n)
    results = [await reqrep_latency(ctx.url, n) for _ in range(reps)]
    for metric, runs in (
        (REQREP_P50, [r[0] for r in results]),
        (REQREP_P99, [r[1] for r in results]),
    ):
        value = statistics.median(runs)
        ctx.baselines[metric] = value
        out.append(emit(BENCH, metric, value, "us", n=n, runs=rounded_runs(runs)))
    return out
