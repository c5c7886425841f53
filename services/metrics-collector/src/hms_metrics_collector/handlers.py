"""Subscribers of the metrics-collector: thin ``on_<event>`` functions that call ``core``.

The hot path (sample batches) is a raw BatchConsumer in ``app``; here are the queries, on core
NATS in one queue group, subscribed before the service says it is ready."""

from __future__ import annotations

from typing import Annotated

from faststream import Context
from faststream.nats import NatsRouter
from faststream.nats.annotations import NatsMessage
from hms_contracts import subjects
from hms_kit import Clock

from .core import SERVICE
from .metrics import CollectorMetrics
from .ports import SampleStore
from .query import encode, result

router = NatsRouter()


@router.subscriber(subjects.QUERY_METRICS.wildcard(), queue=SERVICE)
async def on_metric_query(
    msg: NatsMessage,
    store: Annotated[SampleStore, Context("store")],
    clock: Annotated[Clock, Context("clock")],
    metrics: Annotated[CollectorMetrics, Context("metrics")],
) -> bytes:
    """Answer a MetricQuery on ``ops.query.metrics.<ns>`` with a MetricQueryResult."""
    namespace = subjects.QUERY_METRICS.namespace_of(msg.raw_message.subject)
    answer = await result(store, namespace, msg.body, clock.now())
    metrics.queries.labels(outcome="error" if answer.error else "ok").inc()
    return encode(answer)
