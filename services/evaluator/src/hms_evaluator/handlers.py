"""How the evaluator reads its two inputs on the hot path (the kit's ``BatchConsumer``, not a
FastStream subscriber: ~100 µs per message would cap it far below its samples).

Metric batches are read with the standard JSON decoder and only the envelope is checked here
(its namespace must be the subject's: a namespace client may publish only on its own subjects,
and its payload may not speak for another); samples are read one by one, and only those of
metrics a rule or SLO uses, by the core. Run events are validated whole against the catalogue.
"""

from __future__ import annotations

import json

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

from .evaluation import ReceivedBatch

router = NatsRouter()

RUN_EVENTS = (RunStarted, RunProgressed, RunCompleted, RunFailed, RunDeadLettered)


def decode_metrics(msg: Msg) -> ReceivedBatch:
    """A ``MetricSampleBatch`` message as the hot path reads it; ValueError when it is none."""
    namespace = subjects.METRIC.namespace_of(msg.subject)
    doc = json.loads(msg.data)
    if not isinstance(doc, dict):
        raise ValueError("payload: a MetricSampleBatch is a JSON object")
    if doc.get("namespace") != namespace:
        raise ValueError(
            f"namespace: {doc.get('namespace')!r} does not match the subject's {namespace!r}"
        )
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or version != 1:
        raise ValueError(f"schema_version: {version!r} is not a version this evaluator reads")
    samples = doc.get("samples")
    if not isinstance(samples, list) or not samples:
        raise ValueError("samples: a non-empty list of samples is required")
    meta = msg.metadata
    return ReceivedBatch(namespace, samples, meta.sequence.stream, meta.timestamp.timestamp())


def decode_run_event(msg: Msg) -> BusEvent:
    """A run lifecycle event, validated against its model; ValueError otherwise."""
    event = catalogue.decode(msg.subject, msg.data)
    if not isinstance(event, RUN_EVENTS):
        raise ValueError(f"{type(event).__name__} on {msg.subject!r} is not a run event")
    return event
