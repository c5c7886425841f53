"""How the evaluator reads its two inputs on the hot path (the kit's ``BatchConsumer``, not a
FastStream subscriber: ~100 µs per message would cap it far below its samples).

Metric batches are decoded by ``msgspec`` into typed structs (:mod:`.core.samples`) and the
envelope is checked here (its namespace must be the subject's: a namespace client may publish
only on its own subjects, and its payload may not speak for another); the core then reads only
the samples of metrics a rule or SLO uses. Run events are validated whole against the catalogue.
"""

from __future__ import annotations

import msgspec
from faststream.nats import NatsRouter
from hms_contracts import catalogue, subjects
from hms_contracts.bus import BusEvent
from hms_contracts.runs import (
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunStarted,
)
from nats.aio.msg import Msg

from .core.samples import BATCH
from .evaluation import ReceivedBatch

router = NatsRouter()

RUN_EVENTS = (RunStarted, RunProgressed, RunCompleted, RunFailed, RunDeadLettered)


def decode_metrics(msg: Msg) -> ReceivedBatch:
    """A ``MetricSampleBatch`` message as the hot path reads it; ValueError when it is none."""
    namespace = subjects.METRIC.namespace_of(msg.subject)
    try:
        batch = BATCH.decode(msg.data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"MetricSampleBatch: {exc}") from None
    if batch.namespace != namespace:
        raise ValueError(
            f"namespace: {batch.namespace!r} does not match the subject's {namespace!r}"
        )
    if batch.schema_version != 1:
        raise ValueError(f"schema_version: {batch.schema_version} is not one this evaluator reads")
    if not batch.samples:
        raise ValueError("samples: a non-empty list of samples is required")
    meta = msg.metadata
    return ReceivedBatch(namespace, batch.samples, meta.sequence.stream, meta.timestamp.timestamp())


def decode_run_event(msg: Msg) -> BusEvent:
    """A run lifecycle event, validated against its model; ValueError otherwise."""
    event = catalogue.decode(msg.subject, msg.data)
    if not isinstance(event, RUN_EVENTS):
        raise ValueError(f"{type(event).__name__} on {msg.subject!r} is not a run event")
    return event
