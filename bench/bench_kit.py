"""The service kit's JetStream paths against the raw nats-py baselines of the same run.

- ``kit_batch_consumer``: :class:`hms_kit.BatchConsumer` draining a pre-filled stream: fetch(100),
  validate each message into its contract model, one handler call per batch, ack after it.
  Baseline: raw ``fetch(100)`` + ack of the same payload size.
- ``kit_publish_many``: :func:`hms_kit.publish_many` (model -> JSON, ``Nats-Msg-Id``, trace
  headers, pipelined acks). Baseline: raw ``publish_async`` of bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from hms_contracts.base import Event
from hms_contracts.specs import ConsumerSpec
from hms_kit import BatchConsumer, Delivery, publish_many

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, median_of, rounded_runs

log = logging.getLogger(__name__)

BENCH = "kit"
NOW = datetime(2026, 11, 24, tzinfo=UTC)


class Item(Event):
    """A small event, about the size of the baseline payloads once serialized."""

    item: int

    def subject(self) -> str:
        return SUBJECT_HOLDER[0]


SUBJECT_HOLDER = ["bench.m"]


def items(count: int, tag: str) -> list[Item]:
    return [
        Item(event_id=f"{tag}-{i}", occurred_at=NOW, namespace="bench", item=i)
        for i in range(count)
    ]


async def kit_batch_consumer(url: str, count: int) -> float:
    async with base.connected(url) as nc:
        js = nc.jetstream()
        async with base.temp_stream(js, "BENCH_KC") as subject:
            stream = subject.split(".")[0]
            payloads = [e.model_dump_json().encode() for e in items(count, stream)]
            await asyncio.gather(*[await js.publish_async(subject, p) for p in payloads])
            spec = ConsumerSpec(stream=stream, durable="bench_kit", max_ack_pending=10_000)
            await js.add_consumer(stream, durable_name=spec.durable, ack_policy="explicit")
            done = asyncio.Event()
            seen = 0

            async def handler(batch: Sequence[Delivery[Item]]) -> None:
                nonlocal seen
                seen += len(batch)
                if seen >= count:
                    done.set()

            consumer = BatchConsumer(nc, spec, Item, handler, batch=100)
            start = time.perf_counter()
            task = asyncio.create_task(consumer.run())
            await asyncio.wait_for(done.wait(), 60)
            await nc.flush()
            elapsed = time.perf_counter() - start
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            info = await js.consumer_info(stream, spec.durable)
            if info.num_ack_pending or info.num_pending:
                raise RuntimeError(f"kit consumer left {info.num_ack_pending} unacked")
            return count / elapsed


async def kit_publish_many(url: str, count: int) -> float:
    async with base.connected(url) as nc:
        js = nc.jetstream()
        async with base.temp_stream(js, "BENCH_KP") as subject:
            SUBJECT_HOLDER[0] = subject
            events = items(count, subject)
            start = time.perf_counter()
            acks = await publish_many(js, events)
            elapsed = time.perf_counter() - start
            if len({a.seq for a in acks}) != count:
                raise RuntimeError("publish_many lost or merged messages")
            return count / elapsed


async def run(ctx: BenchContext) -> list[Record]:
    out: list[Record] = []
    for metric, fn, baseline, n in (
        ("kit_batch_consumer", kit_batch_consumer, base.JS_PULL_FETCH_ACK, ctx.n(30_000, 5_000)),
        ("kit_publish_many", kit_publish_many, base.JS_PUBLISH_ASYNC, ctx.n(10_000, 3_000)),
    ):
        log.info("%s: %d x %d msgs", metric, ctx.repeats, n)
        m = await median_of(ctx.repeats, lambda fn=fn, n=n: fn(ctx.url, n))  # type: ignore[misc]
        out.append(
            emit(
                BENCH,
                metric,
                m.median,
                "msg/s",
                **ctx.vs(baseline, m.median),
                n=n,
                runs=rounded_runs(m.runs),
                sync=ctx.sync,
            )
        )
    return out
