"""A message's fate when its handler does not simply return: retry later, or dead-letter.

A handler states the fate explicitly by raising :class:`Retry` (nak, redeliver after a delay)
or :class:`Reject` (dead-letter with the reason, never redeliver), or takes the message over
with :class:`Deferred` (it settles the message itself, later). Any other exception is the
handler's own failure, not the message's: the message is nakked with the consumer's backoff
for that delivery and dead-lettered with the error only on its last allowed delivery
(``max_deliver``). Only a payload that cannot be decoded is dead-lettered at once.
"""

from __future__ import annotations

from hms_contracts.specs import ConsumerSpec
from nats.aio.client import Client
from nats.aio.msg import Msg

from .deadletter import dead_letter, describe_error
from .metrics import KitMetrics

#: redelivery delay when the consumer has no backoff of its own, seconds
DEFAULT_DELAY_S = 1.0


class Retry(Exception):
    """Redeliver this message after ``delay_s`` seconds (None: the consumer's backoff)."""

    def __init__(self, reason: str = "retry requested", *, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class Reject(Exception):
    """Dead-letter this message with ``reason`` and never deliver it again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Deferred(Exception):
    """The handler has taken this message over and settles it itself, later (e.g. a run held
    while its queue is paused); the consumer leaves it alone."""


def retry_delay(spec: ConsumerSpec | None, attempt: int) -> float:
    """The consumer's backoff step for delivery number ``attempt`` (1-based), in seconds."""
    backoff = spec.backoff_s if spec is not None else ()
    if not backoff:
        return DEFAULT_DELAY_S
    return backoff[min(max(attempt, 1), len(backoff)) - 1]


def is_last_delivery(spec: ConsumerSpec | None, attempt: int) -> bool:
    """Whether the server will not redeliver after delivery number ``attempt``."""
    return spec is not None and attempt >= spec.max_deliver


def attempt_of(msg: Msg) -> int:
    """How often JetStream has delivered ``msg`` (1 on the first delivery)."""
    return int(msg.metadata.num_delivered)


async def settle_failure(
    nc: Client,
    msg: Msg,
    exc: BaseException,
    spec: ConsumerSpec | None,
    metrics: KitMetrics | None = None,
) -> str:
    """Nak ``msg`` for redelivery, or dead-letter and term it; returns the outcome.

    ``Reject`` dead-letters at once with its reason; a ``Retry`` or any other error naks with
    the delay asked for (or the consumer's backoff), except on the last allowed delivery,
    where the message is dead-lettered with the error rather than dropped by the server.
    """
    if isinstance(exc, Reject):
        await dead_letter(nc, msg, exc.reason, metrics)
        return "dead_lettered"
    attempt = attempt_of(msg)
    if is_last_delivery(spec, attempt):
        why = exc.reason if isinstance(exc, Retry) else describe_error(exc)
        await dead_letter(nc, msg, f"failed {attempt} deliveries: {why}", metrics)
        return "dead_lettered"
    delay = exc.delay_s if isinstance(exc, Retry) else None
    await msg.nak(delay=retry_delay(spec, attempt) if delay is None else delay)
    return "nacked"
