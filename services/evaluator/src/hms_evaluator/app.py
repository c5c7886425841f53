"""Builds the evaluator service: its settings, resources and leader loop, and nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from hms_contracts import specs
from hms_kit import BatchConsumer, Clock, Delivery, Loop, Resources, Service, SystemClock
from nats.aio.msg import Msg

from . import __version__
from .adapters import SqliteLedger, WatchedConfig, WorkQueues, replay_metrics
from .core import SERVICE
from .evaluation import Evaluation, EvaluatorMetrics, ReceivedBatch
from .handlers import decode_metrics, decode_run_event, router
from .ports import ConfigSource
from .settings import EvaluatorSettings

log = logging.getLogger(__name__)

LEDGER_FILE = "evaluator.sqlite3"


def _settings(service: Service) -> EvaluatorSettings:
    if not isinstance(service.settings, EvaluatorSettings):
        raise TypeError(f"the evaluator needs EvaluatorSettings, not {service.settings!r}")
    return service.settings


def resources_with(clock: Clock | None = None, config: ConfigSource | None = None) -> Resources:
    """The evaluator's resources, with the clock or the config source replaced (tests)."""

    @asynccontextmanager
    async def opened(service: Service) -> AsyncIterator[Mapping[str, object]]:
        ledger = SqliteLedger(_settings(service).state_dir / LEDGER_FILE)
        try:
            yield {
                "clock": clock or SystemClock(),
                "ledger": ledger,
                "rules": config or WatchedConfig(service),
                "metrics": EvaluatorMetrics(service.metrics.registry),
            }
        finally:
            await ledger.close()

    return opened


resources = resources_with()
"""What the leader loop uses, opened once per process and closed after it: the clock, the
ledger (SQLite in the state directory, opened on first use), the config source and the
evaluator's metrics."""


async def _rebuild_windows(service: Service, evaluation: Evaluation) -> None:
    """Read back the metric batches of the longest rule window, so windows hold what they
    held before the restart (the durable consumer goes on from where it was acked)."""
    spans = [r.span for r in evaluation.engine.rules.values()]
    if not spans:
        return
    since = evaluation.clock.now() - timedelta(seconds=max(spans))

    async def handle(msgs: list[Msg]) -> None:
        batches = []
        for msg in msgs:
            try:
                batches.append(decode_metrics(msg))
            except ValueError:
                continue
        evaluation.ingest(batches, slos=False)

    last = await replay_metrics(service.js, since, handle, inbox_prefix=service.inbox_prefix)
    evaluation.replayed_seq = last
    log.info(
        "rebuilt windows from the metrics stream since %s (%d samples)",
        since.isoformat(),
        evaluation.engine.ingested,
    )


async def tick_forever(evaluation: Evaluation, tick_s: float) -> None:
    while True:
        try:
            await evaluation.tick()
        except Exception:
            log.exception("evaluator tick failed; retrying on the next one")
        await evaluation.clock.sleep(tick_s)


def evaluate_with(on_evaluated: Callable[[float], None] | None = None) -> Loop:
    async def evaluate(service: Service) -> None:
        """The leader loop: restore, rebuild the windows, then consume metric batches and run
        events and tick, only while this instance holds the evaluator's lease."""
        settings, context = _settings(service), service.broker.context
        evaluation = Evaluation(
            service.js,
            context.get("rules"),
            context.get("ledger"),
            context.get("clock"),
            metrics=context.get("metrics"),
            slo_status_every_s=settings.slo_status_every_s,
            enqueued=WorkQueues(service.js, settings.queue_scan_limit),
            on_evaluated=on_evaluated,
        )
        evaluation.fresh_s = settings.fresh_s
        await evaluation.start()
        if settings.replay:
            await _rebuild_windows(service, evaluation)
        metrics: BatchConsumer[ReceivedBatch] = BatchConsumer.for_service(
            service,
            specs.EVALUATOR_METRICS,
            ReceivedBatch,
            evaluation.on_metrics,
            batch=settings.batch,
            fetch_timeout=settings.fetch_timeout_s,
            decode=decode_metrics,
        )
        runs = BatchConsumer.for_service(
            service,
            specs.EVALUATOR_JOBS,
            object,
            _runs_handler(evaluation),
            decode=decode_run_event,
        )
        service.broker.context.set_global("evaluation", evaluation)
        await asyncio.gather(metrics.run(), runs.run(), tick_forever(evaluation, settings.tick_s))

    return evaluate


def _runs_handler(
    evaluation: Evaluation,
) -> Callable[[Sequence[Delivery[object]]], Awaitable[None]]:
    async def handle(deliveries: Sequence[Delivery[object]]) -> None:
        await evaluation.on_run_events(deliveries)  # type: ignore[arg-type]

    return handle


def create_service(
    settings: EvaluatorSettings | None = None,
    *,
    clock: Clock | None = None,
    config: ConfigSource | None = None,
    lease_bucket: specs.KVSpec = specs.LEASES,
    on_evaluated: Callable[[float], None] | None = None,
) -> Service:
    """The evaluator process: broker, app, resources, health, heartbeat, lease, leader loop.
    ``clock`` and ``config`` replace the system clock and the config registry (tests)."""
    settings = settings or EvaluatorSettings()
    return Service(
        SERVICE,
        settings,
        version=__version__,
        routers=(router,),
        resources=resources_with(clock, config),
        leader_loops=(evaluate_with(on_evaluated),),
        lease_bucket=lease_bucket,
    )
