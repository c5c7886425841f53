"""Answering metric queries: a MetricQuery sent as a request on ``ops.query.metrics.<ns>`` gets
a MetricQueryResult (the namespace is the subject's: a namespace's client asks about its own
metrics only). Instances answer in one queue group; a bad query gets a result with its error."""

from __future__ import annotations

import asyncio
import logging

from hms_contracts import subjects
from hms_contracts.metrics import MetricQuery, MetricQueryResult
from hms_kit import Clock, describe_error
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from .core import SERVICE, QueryError
from .metrics import CollectorMetrics
from .ports import SampleStore

log = logging.getLogger(__name__)

#: the largest query body read
MAX_QUERY_BYTES = 64 * 1024


class QueryServer:
    """Serves queries from the store until cancelled."""

    def __init__(
        self, nc: Client, store: SampleStore, clock: Clock, metrics: CollectorMetrics
    ) -> None:
        self.nc = nc
        self.store = store
        self.clock = clock
        self.metrics = metrics

    async def run(self) -> None:
        sub = await self.nc.subscribe(
            subjects.QUERY_METRICS.wildcard(), queue=SERVICE, cb=self.answer
        )
        try:
            await asyncio.Event().wait()
        finally:
            await sub.unsubscribe()

    async def result(self, namespace: str, data: bytes) -> MetricQueryResult:
        if len(data) > MAX_QUERY_BYTES:
            return MetricQueryResult(error=f"query of {len(data)} bytes; at most {MAX_QUERY_BYTES}")
        try:
            query = MetricQuery.model_validate_json(data)
            series = await self.store.query(namespace, query, self.clock.now())
        except ValidationError as exc:
            return MetricQueryResult(error=describe_error(exc))
        except QueryError as exc:
            return MetricQueryResult(error=str(exc))
        return MetricQueryResult(series=tuple(series))

    async def answer(self, msg: Msg) -> None:
        if not msg.reply:
            return
        namespace = subjects.QUERY_METRICS.namespace_of(msg.subject)
        try:
            result = await self.result(namespace, msg.data)
        except Exception as exc:  # the store failed: say so rather than time the asker out
            log.exception("query on %s failed", msg.subject)
            result = MetricQueryResult(error=f"the store could not answer: {exc}")
        body = result.model_dump_json().encode()
        if len(body) > self.nc.max_payload:
            result = MetricQueryResult(
                error=f"the answer has {len(body)} bytes, over the server's limit of "
                f"{self.nc.max_payload}; narrow the series or use a larger step"
            )
            body = result.model_dump_json().encode()
        self.metrics.queries.labels(outcome="error" if result.error else "ok").inc()
        await msg.respond(body)
