"""A raw nats-py batch consumer for hot paths (FastStream's per-message cost is ~100 µs).

Pulls up to ``batch`` messages from a durable consumer, validates each against its contract
model (a poison message is dead-lettered and termed), hands the valid ones to the handler in
one call, and acks them only after the handler returns: the handler commits the effect (one
SQLite transaction for the batch), then the acks go out. A handler error naks the batch with the
consumer's backoff, and dead-letters messages on their last allowed delivery. A handler may
settle single messages itself (nak or dead-letter one item of a batch); the consumer leaves
settled messages alone. The handler states a batch's fate outright by raising
:class:`~hms_kit.Retry` (nak after its delay) or :class:`~hms_kit.Reject` (dead-letter and term
every message of the batch).

A hot path whose full validation would cost more than its work passes ``decode`` instead: a
function of the message that returns what the handler needs and raises ValueError (pydantic's
ValidationError is one) for a message it cannot accept, which is dead-lettered the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from hms_contracts.base import Event
from hms_contracts.specs import ConsumerSpec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError
from opentelemetry import propagate, trace

from .deadletter import dead_letter, describe_error
from .fate import Deferred, Reject, Retry, attempt_of, settle_failure
from .metrics import KitMetrics

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger(__name__)

E = TypeVar("E")
Decoder = Callable[[Msg], E]
"""Turns a message into what the handler receives; ValueError refuses the message."""


def validator(model: type[Event]) -> Decoder[Any]:
    """The default decoder: validate the payload against its contract model."""
    return lambda msg: model.model_validate_json(msg.data)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[E]):
    """A validated event (or what ``decode`` made of the message) and the JetStream message
    that carried it."""

    event: E
    msg: Msg

    @property
    def attempt(self) -> int:
        """How often JetStream has delivered this message (1 on the first delivery)."""
        return attempt_of(self.msg)


Handler = Callable[[Sequence[Delivery[E]]], Awaitable[None]]


class BatchConsumer(Generic[E]):
    """Consume ``spec`` in batches until cancelled, surviving NATS outages.

    Each batch is one ``CONSUMER`` span on ``tracer_provider`` (the service's: build with
    :meth:`for_service`), linked to the trace context each message carried in its headers.
    """

    def __init__(
        self,
        nc: Client,
        spec: ConsumerSpec,
        model: type[E],
        handler: Handler[E],
        *,
        inbox_prefix: str = "_INBOX",
        batch: int = 100,
        fetch_timeout: float = 1.0,
        metrics: KitMetrics | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        decode: Decoder[E] | None = None,
    ) -> None:
        self.nc = nc
        self.spec = spec
        self.model = model
        self.decode: Decoder[E] = decode or cast(Decoder[E], validator(cast(Any, model)))
        self.handler = handler
        self.inbox_prefix = inbox_prefix
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.metrics = metrics
        self.tracer = trace.get_tracer("hms_kit.consumer", tracer_provider=tracer_provider)
        self._span_name = f"{spec.durable} process"
        self._span_attributes = {
            "messaging.system": "nats",
            "messaging.consumer.group.name": spec.durable,
            "messaging.destination.name": spec.stream,
        }

    @classmethod
    def for_service(
        cls,
        service: Service,
        spec: ConsumerSpec,
        model: type[E],
        handler: Handler[E],
        *,
        batch: int = 100,
        fetch_timeout: float = 1.0,
        decode: Decoder[E] | None = None,
    ) -> BatchConsumer[E]:
        """A consumer wired to the service: its connection, inbox, metrics and tracer."""
        return cls(
            service.nc,
            spec,
            model,
            handler,
            inbox_prefix=service.inbox_prefix,
            batch=batch,
            fetch_timeout=fetch_timeout,
            metrics=service.metrics,
            tracer_provider=service.tracer_provider,
            decode=decode,
        )

    def _count(self, outcome: str, n: int = 1) -> None:
        if self.metrics is not None and n:
            self.metrics.messages.labels(consumer=self.spec.durable, outcome=outcome).inc(n)

    async def run(self) -> None:
        """Consume until cancelled. The pull subscription goes with us, so a connection
        drain that follows is not held up by it."""
        js = self.nc.jetstream()
        sub: JetStreamContext.PullSubscription | None = None
        try:
            while True:
                try:
                    if sub is None:
                        sub = await js.pull_subscribe_bind(
                            durable=self.spec.durable,
                            stream=self.spec.stream,
                            inbox_prefix=(self.inbox_prefix + ".").encode(),
                        )
                    msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout)
                except (TimeoutError, NatsTimeoutError):
                    # a cancel that lands as fetch's own timeout fires is turned into a
                    # TimeoutError by asyncio.wait_for: honour it, or the task never ends
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise asyncio.CancelledError from None
                    continue
                except (ConnectionClosedError, NoServersError, APIError, OSError) as exc:
                    log.warning("consumer %s: %s; retrying", self.spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                await self.handle(msgs)
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Validate, dispatch and settle one fetched batch."""
        good: list[Delivery[E]] = []
        for msg in msgs:
            try:
                good.append(Delivery(self.decode(msg), msg))
            except ValueError as exc:  # ContractError and ValidationError are ValueErrors
                await dead_letter(self.nc, msg, describe_error(exc), self.metrics)
                self._count("dead_lettered")
        if not good:
            return
        links = self._links(good)
        with self.tracer.start_as_current_span(
            self._span_name,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={**self._span_attributes, "messaging.batch.message_count": len(good)},
        ):
            try:
                await self.handler(good)
            except Exception as exc:
                await self._settle_failure(good, exc)
                return
        # a handler may settle some messages itself (a per-item fate); the rest are acked
        unsettled = [d for d in good if not d.msg.is_acked]
        for d in unsettled:
            await d.msg.ack()
        self._count("acked", len(unsettled))

    @staticmethod
    def _links(batch: Sequence[Delivery[E]], most: int = 32) -> list[trace.Link]:
        """Links to the traces the first ``most`` messages carry (W3C ``traceparent``, the
        kit's propagator); messages without one cost nothing, on a hot path of small items."""
        links: list[trace.Link] = []
        for d in batch:
            headers = d.msg.headers
            if not headers or "traceparent" not in headers:
                continue
            span_ctx = trace.get_current_span(propagate.extract(headers)).get_span_context()
            if span_ctx.is_valid:
                links.append(trace.Link(span_ctx))
                if len(links) >= most:
                    break
        return links

    async def _settle_failure(self, batch: Sequence[Delivery[E]], exc: Exception) -> None:
        if isinstance(exc, Deferred):  # the handler settles them itself, later
            return
        if isinstance(exc, Retry | Reject):
            log.info("consumer %s: %r on %d message(s)", self.spec.durable, exc, len(batch))
        else:
            log.exception(
                "consumer %s: handler failed on %d message(s)", self.spec.durable, len(batch)
            )
        for d in batch:
            if d.msg.is_acked:  # settled by the handler before it failed
                continue
            outcome = await settle_failure(self.nc, d.msg, exc, self.spec, self.metrics)
            self._count(outcome)
