"""FastStream subscribers on the durable consumers of the contracts, set up one right way.

A consumer may carry several event types (``incident_engine_alerts``: alerts firing and
resolved, SLA breaches). One FastStream subscriber binds the consumer; each message is decoded
by its subject (:func:`hms_contracts.decode`) and routed to the handler registered for its event
type. Every event type the consumer carries must be handled or explicitly ignored: a missing
handler is an error when the subscriber is built, never a message dropped or dead-lettered at
run time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from hms_contracts import CATALOGUE, decode, event_for_subject, subjects
from hms_contracts.bus import BusEvent
from hms_contracts.errors import SubjectError
from hms_contracts.specs import ConsumerSpec
from pydantic import ValidationError

from .deadletter import describe_error
from .errors import SubscriberError
from .fate import Reject
from .provision import consumer_config

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]


def _overlap(a: str, b: str) -> bool:
    """Whether two NATS subject patterns can both match one subject."""
    left, right = a.split("."), b.split(".")
    for i, (x, y) in enumerate(zip(left, right, strict=False)):
        if ">" in (x, y):
            return True
        if "*" not in (x, y) and x != y:
            return False
        if i == min(len(left), len(right)) - 1:
            return len(left) == len(right)
    return False


def carried_events(spec: ConsumerSpec) -> tuple[type[BusEvent], ...]:
    """The event types the consumer ``spec`` receives, in catalogue order."""
    return tuple(
        model
        for model in CATALOGUE
        if any(_overlap(f, model.subject_pattern()) for f in spec.filter_subjects)
    )


@functools.lru_cache(maxsize=4096)
def _model_on(subject: str) -> type[BusEvent] | None:
    return event_for_subject(subject)


def _is(model: type[BusEvent]) -> Callable[[StreamMessage[Any]], bool]:
    def routed_here(msg: StreamMessage[Any]) -> bool:
        return _model_on(msg.raw_message.subject) is model

    routed_here.__name__ = f"is_{model.__name__}"
    return routed_here


async def decode_event(msg: StreamMessage[Any]) -> BusEvent:
    """The event a message carries, by its subject; an undecodable one is rejected (DLQ)."""
    try:
        return decode(msg.raw_message.subject, msg.body)
    except (ValidationError, SubjectError) as exc:
        raise Reject(describe_error(exc)) from exc


async def _ignored(event: BusEvent) -> None:
    log.debug("ignoring %s %s", type(event).__name__, event.event_id)


def durable_subscriber(
    router: NatsRouter,
    spec: ConsumerSpec,
    handlers: Mapping[type[BusEvent], Handler],
    *,
    service: str,
    ignore: Collection[type[BusEvent]] = (),
    batch_size: int = 16,
    fetch_timeout_s: float = 1.0,
) -> Any:
    """Subscribe one handler per event type to the durable pull consumer ``spec``.

    ``handlers`` maps each event type the consumer carries to its handler, an ordinary
    FastStream handler (typed argument, injected context, a returned event published by its
    ``@publisher``); the types in ``ignore`` are acked and dropped on purpose. Raises
    :class:`~hms_kit.SubscriberError` when a carried type has neither, or a handler is for a
    type the consumer does not carry.

    Binds to the consumer the kit provisions (the stream is never declared here), pulls in
    batches, receives replies on the service's own inbox prefix (so least-privilege permissions
    hold) and acks after the handler returns. A payload that cannot be decoded is dead-lettered
    and termed; a handler's error is retried with the consumer's backoff (see
    :mod:`hms_kit.fate`). Returns the FastStream subscriber.
    """
    carried = carried_events(spec)
    where = f"consumer {spec.durable} ({', '.join(spec.filter_subjects)})"
    if missing := [m.__name__ for m in carried if m not in handlers and m not in ignore]:
        raise SubscriberError(
            f"{where} carries {', '.join(missing)} but has no handler for it: "
            "add one, or list the type in ignore= to ack and drop it"
        )
    if foreign := [m.__name__ for m in (*handlers, *ignore) if m not in carried]:
        raise SubscriberError(f"{where} never receives {', '.join(foreign)}")
    subscriber = router.subscriber(
        spec.filter_subjects[0] if spec.filter_subjects else "",
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        config=consumer_config(spec),
        pull_sub=PullSub(batch_size=batch_size, timeout=fetch_timeout_s),
        inbox_prefix=(subjects.inbox_prefix(service) + ".").encode(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=decode_event,
    )
    for model, handler in handlers.items():
        subscriber(filter=_is(model))(handler)
    # last: ignored types, and subjects no event lives on (decoding rejects those)
    subscriber(_ignored)
    return subscriber
