"""FastStream subscribers on the durable consumers of the contracts, set up one right way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from hms_contracts import subjects
from hms_contracts.specs import ConsumerSpec

from .provision import consumer_config


def durable_subscriber(
    router: NatsRouter,
    spec: ConsumerSpec,
    *,
    service: str,
    batch_size: int = 16,
    fetch_timeout_s: float = 1.0,
) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """Decorator subscribing a handler to the durable pull consumer ``spec``.

    Binds to the consumer the kit provisions (the stream is never declared here), pulls in
    batches, receives replies on the service's own inbox prefix (so least-privilege permissions
    hold), acks after the handler returns and naks when it raises. A payload that fails
    validation is dead-lettered and termed by the kit's middleware.
    """
    decorator: Callable[[Callable[..., Awaitable[Any]]], Any] = router.subscriber(
        spec.filter_subjects[0] if spec.filter_subjects else "",
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        config=consumer_config(spec),
        pull_sub=PullSub(batch_size=batch_size, timeout=fetch_timeout_s),
        inbox_prefix=(subjects.inbox_prefix(service) + ".").encode(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    return decorator
