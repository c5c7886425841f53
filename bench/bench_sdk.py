"""The agency SDK's metric path against raw nats-py in the same run.

- ``push_samples``: ``noc.observe()`` of single samples from one client (the SDK batches them
  1000 per MetricSampleBatch in the background, pipelines the JetStream acks) until ``flush()``
  has every ack. Baseline: raw ``publish_async`` of the same batches, encoded beforehand, every
  ack collected. Both in samples/s.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from hms_ops.noc import AsyncNOC
from hms_ops.samples import Buffer, Encoder
from nats.js.api import StreamConfig

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, median_of, rounded_runs

log = logging.getLogger(__name__)

BENCH = "sdk"
BATCH = 1000
LABELS = {"route": "/claims"}


async def _stream(url: str) -> tuple[str, str]:
    """A fresh stream for one namespace's metrics; its namespace and name."""
    ns = f"bench_{uuid.uuid4().hex[:10]}"
    async with base.connected(url) as nc:
        await nc.jetstream().add_stream(
            StreamConfig(name=ns.upper(), subjects=[f"ops.metric.{ns}.>"], max_msg_size=4 << 20)
        )
    return ns, ns.upper()


async def _drop(url: str, stream: str) -> None:
    async with base.connected(url) as nc:
        await nc.jetstream().delete_stream(stream)


async def sdk_push(url: str, count: int) -> float:
    ns, stream = await _stream(url)
    noc = await AsyncNOC.open(ns, url=url, batch_size=BATCH, max_buffer=count)
    try:
        start = time.perf_counter()
        for i in range(count):
            noc.observe("api.latency_ms", float(i), labels=LABELS, unit="ms")
            if i % BATCH == 0:
                await asyncio.sleep(0)  # let the background sender run, as an app would
        await noc.flush()
        elapsed = time.perf_counter() - start
        if noc.dropped:
            raise RuntimeError(f"the SDK dropped {noc.dropped} samples")
    finally:
        await noc.close()
        await _drop(url, stream)
    return count / elapsed


async def raw_push(url: str, count: int) -> float:
    ns, stream = await _stream(url)
    encoder = Encoder(ns, "sdk")
    buffer = Buffer(encoder, count)
    for i in range(count):
        buffer.add("api.latency_ms", float(i), LABELS, "ms")
    batches = [encoder.encode(buffer.take(BATCH)) for _ in range(count // BATCH)]
    try:
        async with base.connected(url) as nc:
            js = nc.jetstream()
            start = time.perf_counter()
            futures = [
                await js.publish_async(encoder.subject, body, headers={"Nats-Msg-Id": event_id})
                for event_id, body in batches
            ]
            await asyncio.gather(*futures)
            elapsed = time.perf_counter() - start
    finally:
        await _drop(url, stream)
    return count / elapsed


async def run(ctx: BenchContext) -> list[Record]:
    n = ctx.n(200_000, 20_000)
    log.info("push_samples: %d x %d samples", ctx.repeats, n)
    raw = await median_of(ctx.repeats, lambda: raw_push(ctx.url, n))
    sdk = await median_of(ctx.repeats, lambda: sdk_push(ctx.url, n))
    ratio = round(sdk.median / raw.median, 3) if raw.median else None
    return [
        emit(
            BENCH,
            "push_samples",
            sdk.median,
            "samples/s",
            baseline=raw.median,
            ratio=ratio,
            n=n,
            batch=BATCH,
            runs=rounded_runs(sdk.runs),
            baseline_runs=rounded_runs(raw.runs),
            sync=ctx.sync,
        )
    ]
