"""The evaluator's hot path against a raw nats-py receive + decode of the same batches.

- ``evaluation/ingest_samples``: samples/s through the evaluator's own path (the kit's
  ``BatchConsumer`` with the evaluator's decoder, windows updated, touched rules evaluated,
  state committed, acks, its tick running) with 1,000 rules over 100,000 series, draining
  batches of 1,000 samples stored in the METRICS stream. Timed after a warm-up of 100 batches
  that shows it every series once (binding a new series to its rules costs more, once).
  Baseline: raw ``fetch`` + ``json.loads`` + ack of the same messages.
- ``evaluation/ingest_lag_p99_ms``: from a batch stored in JetStream to its samples evaluated,
  while batches are published at a steady pace.
- ``evaluation/detect_p50_ms`` / ``detect_p99_ms``: from the publish of a breaching sample to
  the ``ops.alert.<ns>.firing`` message (a rule with ``for: 0``) under about 100,000 samples/s
  of background load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hms_contracts import MetricSampleBatch, specs, subjects
from hms_contracts.config import Alert, parse_object
from hms_contracts.specs import ConsumerSpec
from hms_evaluator.adapters import SqliteLedger, StaticConfig
from hms_evaluator.evaluation import Evaluation, ReceivedBatch
from hms_evaluator.handlers import decode_metrics
from hms_evaluator.settings import EvaluatorSettings
from hms_kit import BatchConsumer, Delivery, SystemClock, ensure_stream
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, median_of, percentile, rounded_runs, unique

log = logging.getLogger(__name__)

BENCH = "evaluation"
METRICS_PER_NS = 100
SERIES_PER_METRIC = 1000
RULES_PER_METRIC = 10  # 100 metrics x 10 rules = 1,000 rules; 100 x 1,000 = 100,000 series
AGGREGATIONS = ("last", "avg", "max", "p99", "rate", "min", "sum", "count", "p90", "last")
BATCH = 1000


def rules(namespace: str) -> list[Alert]:
    out = []
    for m in range(METRICS_PER_NS):
        for r in range(RULES_PER_METRIC):
            doc = {
                "kind": "alert",
                "namespace": namespace,
                "name": f"rule_{m}_{r}",
                "metric": f"bench.m{m}",
                "condition": "> 1e12",  # never holds: the cost of evaluating, not of alerting
                "window": "5m",
                "aggregation": AGGREGATIONS[r],
                "matchers": [f'shard="{r}"'],
            }
            obj = parse_object(doc)
            assert isinstance(obj, Alert)
            out.append(obj)
    return out


def payloads(namespace: str, batches: int, at: datetime) -> list[tuple[str, bytes]]:
    """``batches`` MetricSampleBatch messages of 1,000 samples, metric after metric (each
    batch one sample for each of a metric's 1,000 series), written as the SDK writes them."""
    stamp = at.isoformat().replace("+00:00", "Z")
    template = MetricSampleBatch.create(
        namespace=namespace,
        occurred_at=at,
        source="bench",
        origin="push",
        samples=[{"name": "bench.m0", "value": 1.0, "observed_at": at}],
    )
    envelope = json.loads(template.model_dump_json())
    out = []
    for b in range(batches):
        m = b % METRICS_PER_NS
        envelope["event_id"] = f"bench-{b}"
        envelope["samples"] = [
            {
                "name": f"bench.m{m}",
                "value": float(b + s),
                "unit": "1",
                "labels": {"series": str(s), "shard": str(s % RULES_PER_METRIC)},
                "observed_at": stamp,
            }
            for s in range(SERIES_PER_METRIC)
        ]
        out.append(
            (subjects.METRIC.subject(namespace, f"src{b % 8}"), json.dumps(envelope).encode())
        )
    return out


async def fill(js: JetStreamContext, messages: Sequence[tuple[str, bytes]]) -> None:
    for i in range(0, len(messages), 200):
        acks = [await js.publish_async(s, p) for s, p in messages[i : i + 200]]
        await asyncio.gather(*acks)


def consumer_spec(namespace: str, tag: str) -> ConsumerSpec:
    return ConsumerSpec(
        stream=specs.METRICS.name,
        durable=f"bench_{tag}",
        filter_subjects=(subjects.METRIC.wildcard(namespace),),
        max_ack_pending=10_000,
        ack_wait_s=60.0,
    )


async def add_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    await js.add_consumer(
        spec.stream,
        durable_name=spec.durable,
        filter_subject=spec.filter_subjects[0],
        ack_policy="explicit",
        max_ack_pending=spec.max_ack_pending,
        ack_wait=spec.ack_wait_s,
    )


class Evaluator:
    """The evaluator's hot path with its own durable on the bench's namespace."""

    def __init__(self, nc: Client, namespace: str, alerts: list[Alert], state: Path) -> None:
        self.nc = nc
        self.spec = consumer_spec(namespace, unique("ev")[-10:])
        self.ledger = SqliteLedger(state / "evaluator.sqlite3")
        self.lags: list[float] = []
        self.evaluation = Evaluation(
            nc.jetstream(),
            StaticConfig(alerts),
            self.ledger,
            SystemClock(),
            on_evaluated=self.lags.append,
        )
        self.evaluation.fresh_s = EvaluatorSettings().fresh_s
        self.batches = 0
        self._progress = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.ticks: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.evaluation.start()
        await add_consumer(self.nc.jetstream(), self.spec)

        self.consume()

        async def tick() -> None:
            while True:
                await asyncio.sleep(1.0)
                await self.evaluation.tick()

        self.ticks = asyncio.create_task(tick())

    def consume(self) -> None:
        async def handle(deliveries: Sequence[Delivery[ReceivedBatch]]) -> None:
            await self.evaluation.on_metrics(deliveries)
            self.batches += len(deliveries)
            self._progress.set()

        consumer = BatchConsumer(
            self.nc,
            self.spec,
            ReceivedBatch,
            handle,
            batch=256,
            fetch_timeout=EvaluatorSettings().fetch_timeout_s,
            decode=decode_metrics,
        )
        self.task = asyncio.create_task(consumer.run())

    async def pause(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def reached(self, batches: int) -> None:
        while self.batches < batches:
            self._progress.clear()
            await asyncio.wait_for(self._progress.wait(), 60)

    async def stop(self) -> None:
        for task in (self.task, self.ticks):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.ledger.close()
        await self.nc.jetstream().delete_consumer(self.spec.stream, self.spec.durable)


async def ingest(url: str, batches: int) -> tuple[float, float]:
    """(evaluator samples/s, raw receive + decode samples/s) over the same stored batches."""
    async with base.connected(url) as nc:
        js = nc.jetstream()
        await ensure_stream(js, specs.METRICS)
        await ensure_stream(js, specs.ALERTS)
        namespace = unique("bench")
        warm = METRICS_PER_NS
        messages = payloads(namespace, warm + batches, datetime.now(UTC))
        await fill(js, messages[:warm])
        with tempfile.TemporaryDirectory() as state:
            ev = Evaluator(nc, namespace, rules(namespace), Path(state))
            await ev.start()
            await ev.reached(warm)
            await ev.pause()
            await fill(js, messages[warm:])
            start = time.perf_counter()
            ev.consume()
            await ev.reached(warm + batches)
            elapsed = time.perf_counter() - start
            bindings = sum(1 for _ in ev.evaluation.engine.bindings())
            await ev.stop()
        if bindings != METRICS_PER_NS * SERIES_PER_METRIC or ev.evaluation.engine.dropped:
            raise RuntimeError(f"{bindings} series bound, {ev.evaluation.engine.dropped} dropped")
        evaluated = batches * BATCH / elapsed
        raw = await raw_receive(js, namespace, warm + batches)
        await purge(js, namespace)
        return evaluated, raw


async def raw_receive(js: JetStreamContext, namespace: str, batches: int) -> float:
    spec = consumer_spec(namespace, unique("raw")[-10:])
    await add_consumer(js, spec)
    sub = await js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
    seen = samples = 0
    start = time.perf_counter()
    while seen < batches:
        msgs = await sub.fetch(256, timeout=5)
        for msg in msgs:
            samples += len(json.loads(msg.data)["samples"])
            await msg.ack()
        seen += len(msgs)
    elapsed = time.perf_counter() - start
    await sub.unsubscribe()
    await js.delete_consumer(spec.stream, spec.durable)
    return samples / elapsed


async def purge(js: JetStreamContext, namespace: str) -> None:
    await js.purge_stream(specs.METRICS.name, subject=subjects.METRIC.wildcard(namespace))


async def under_load(
    url: str, seconds: float, probes: int
) -> tuple[list[float], list[float], float]:
    """Publish 100 batches/s (100,000 samples/s) while probing detection: lags and detections
    in ms, and the load reached in samples/s (publishing waits for the stream's acks)."""
    async with base.connected(url) as nc:
        js = nc.jetstream()
        await ensure_stream(js, specs.METRICS)
        await ensure_stream(js, specs.ALERTS)
        namespace = unique("bench")
        probe_rule = parse_object(
            {
                "kind": "alert",
                "namespace": namespace,
                "name": "probe",
                "metric": "bench.probe",
                "condition": "> 100",
                "for": "0s",
            }
        )
        assert isinstance(probe_rule, Alert)
        background = payloads(namespace, METRICS_PER_NS, datetime.now(UTC))
        fired: dict[str, float] = {}
        got = asyncio.Event()

        async def on_alert(msg: Any) -> None:
            probe = json.loads(msg.data)["labels"].get("probe")
            if probe is not None:
                fired[probe] = time.perf_counter()
                got.set()

        sub = await nc.subscribe(subjects.ALERT.subject(namespace, "firing"), cb=on_alert)
        detections: list[float] = []
        with tempfile.TemporaryDirectory() as state:
            ev = Evaluator(nc, namespace, [*rules(namespace), probe_rule], Path(state))
            await ev.start()
            stop = asyncio.Event()
            reached = [0.0]

            async def load() -> None:
                # 100 batches of 1,000 samples a second, built beforehand (their times are
                # the bench's start: well inside the rules' 5-minute windows)
                i, started = 0, time.perf_counter()
                acks: list[asyncio.Future[Any]] = []
                while not stop.is_set():
                    subject, payload = background[i % len(background)]
                    acks.append(await js.publish_async(subject, payload))
                    if len(acks) >= 20:  # back-pressure: at most 20 batches unacknowledged
                        await asyncio.wait_for(acks.pop(0), 30)
                    i += 1
                    await asyncio.sleep(max(0.0, started + i / 100 - time.perf_counter()))
                await asyncio.wait_for(asyncio.gather(*acks), 30)
                reached[0] = i * BATCH / (time.perf_counter() - started)

            loader = asyncio.create_task(load())
            # warm: every series seen once and bound to its rules, then the steady state
            await ev.reached(len(background))
            ev.lags.clear()
            for p in range(probes):
                got.clear()
                at = datetime.now(UTC)
                batch = MetricSampleBatch.create(
                    namespace=namespace,
                    occurred_at=at,
                    source="probe",
                    origin="push",
                    samples=[
                        {
                            "name": "bench.probe",
                            "value": 500.0,
                            "labels": {"probe": str(p)},
                            "observed_at": at,
                        }
                    ],
                )
                sent = time.perf_counter()
                await js.publish(batch.subject(), batch.model_dump_json().encode())
                try:
                    await asyncio.wait_for(got.wait(), 10)
                except TimeoutError:
                    raise RuntimeError(f"probe {p} never fired") from None
                detections.append((fired[str(p)] - sent) * 1000)
                await asyncio.sleep(seconds / probes)
            stop.set()
            log.info("probes done; stopping the load")
            await asyncio.wait_for(loader, 60)
            log.info("load stopped")
            lags = [lag * 1000 for lag in ev.lags]
            await ev.stop()
            log.info("evaluator stopped")
        await sub.unsubscribe()
        await purge(js, namespace)
        log.info("purged")
        return lags, detections, reached[0]


async def run(ctx: BenchContext) -> list[Record]:
    """The figures; the shared streams it made are deleted after, so later benches that make
    streams of their own on ``ops.metric.*`` do not overlap them."""
    try:
        return await _figures(ctx)
    finally:
        async with base.connected(ctx.url) as nc:
            for spec in (specs.METRICS, specs.ALERTS):
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_stream(spec.name)


async def _figures(ctx: BenchContext) -> list[Record]:
    out: list[Record] = []
    batches = ctx.n(1000, 100)
    repeats = 1 if ctx.quick else 3
    log.info("evaluation ingest: %d x %d batches of %d samples", repeats, batches, BATCH)
    pairs = [await ingest(ctx.url, batches) for _ in range(repeats)]
    m = await median_of(1, lambda: asyncio.sleep(0, sorted(p[0] for p in pairs)[len(pairs) // 2]))
    raw = sorted(p[1] for p in pairs)[len(pairs) // 2]
    out.append(
        emit(
            BENCH,
            "ingest_samples",
            m.median,
            "samples/s",
            baseline=raw,
            ratio=round(m.median / raw, 3),
            n=batches * BATCH,
            runs=rounded_runs([p[0] for p in pairs]),
            baseline_runs=rounded_runs([p[1] for p in pairs]),
            rules=METRICS_PER_NS * RULES_PER_METRIC,
            series=METRICS_PER_NS * SERIES_PER_METRIC,
            sync=ctx.sync,
        )
    )
    seconds, probes = (5.0, 20) if ctx.quick else (20.0, 100)
    log.info("evaluation under load: %.0f s, %d probes", seconds, probes)
    lags, detections, load = await under_load(ctx.url, seconds, probes)
    lags.sort()
    detections.sort()
    out.append(
        emit(
            BENCH,
            "ingest_lag_p99_ms",
            percentile(lags, 99),
            "ms",
            n=len(lags),
            load_samples_per_s=round(load),
            sync=ctx.sync,
        )
    )
    for pct in (50, 99):
        out.append(
            emit(
                BENCH,
                f"detect_p{pct}_ms",
                percentile(detections, pct),
                "ms",
                n=len(detections),
                load_samples_per_s=round(load),
                sync=ctx.sync,
            )
        )
    return out
