"""FastStream middleware that states each message's fate when its handler does not return."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fast_depends.exceptions import ValidationError as ArgumentError
from faststream import BaseMiddleware
from faststream._internal.context.repository import ContextRepo
from faststream.exceptions import HandlerException, NackMessage, RejectMessage
from faststream.message import StreamMessage
from hms_contracts import specs
from hms_contracts.specs import ConsumerSpec
from nats.aio.msg import Msg

from .deadletter import dead_letter, describe_error
from .fate import Reject, Retry, settle_failure

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .service import Service

log = logging.getLogger(__name__)


def undecodable(exc: BaseException) -> str | None:
    """The reason a payload cannot be decoded, or None when ``exc`` is not about the payload.

    The broker validates handler arguments with FastDepends errors switched on, so an invalid
    payload raises FastDepends' ``ValidationError`` while a pydantic error raised inside the
    handler (building an outgoing event, say) stays a pydantic error: the handler's own bug.
    A returned value that fails validation is the handler's bug too.
    """
    if isinstance(exc, Reject):
        return exc.reason
    if isinstance(exc, ArgumentError) and all(f.field_name != "return" for f in exc.error_fields):
        return describe_error(exc.original_error)
    return None


def _metadata(raw: Msg) -> Msg.Metadata | None:
    try:
        return raw.metadata
    except Exception:  # not a JetStream message
        return None


class DeadLetterMiddleware(BaseMiddleware):
    """Settles a message whose handler raised.

    - an undecodable payload or a :class:`~hms_kit.Reject` goes to ``dlq.<subject>`` with the
      reason and is termed: the consumer never sees it again and never crashes on it;
    - a :class:`~hms_kit.Retry` naks with its delay (or the consumer's backoff);
    - any other error is the handler's: nak with the consumer's backoff for that delivery and,
      on the last delivery (``max_deliver``), dead-letter with the error. The error is re-raised
      so FastStream logs it and the span records it.

    FastStream's own ``AckMessage``/``NackMessage``/``RejectMessage`` pass through untouched.
    A core NATS message cannot be redelivered: only its dead-lettering applies.
    """

    service: Service
    consumers: dict[tuple[str, str], ConsumerSpec]

    @classmethod
    def factory(cls, service: Service) -> Callable[..., DeadLetterMiddleware]:
        known = {(c.stream, c.durable): c for c in (*specs.CONSUMERS, *service.consumers)}

        def build(msg: Any, /, *, context: ContextRepo) -> DeadLetterMiddleware:
            mw = cls(msg, context=context)
            mw.service = service
            mw.consumers = known
            return mw

        return build

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        try:
            return await call_next(msg)
        except HandlerException:
            raise
        except Exception as exc:
            raw = msg.raw_message
            reason = undecodable(exc)
            if reason is not None:
                await dead_letter(self.service.nc, raw, reason, self.service.metrics)
                raise RejectMessage() from exc
            meta = _metadata(raw)
            if meta is None:  # a core NATS message: nothing will redeliver it
                raise
            spec = self.consumers.get((meta.stream, meta.consumer or ""))
            outcome = await settle_failure(self.service.nc, raw, exc, spec, self.service.metrics)
            if isinstance(exc, Retry):
                log.info("retrying message on %s: %s", raw.subject, exc.reason)
                raise NackMessage() from exc
            if outcome == "nacked":
                log.warning(
                    "handler failed on %s (delivery %d); redelivering",
                    raw.subject,
                    meta.num_delivered,
                )
            raise
