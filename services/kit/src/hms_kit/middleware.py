"""FastStream middleware that dead-letters payloads no handler can accept."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from faststream import BaseMiddleware
from faststream._internal.context.repository import ContextRepo
from faststream.message import StreamMessage
from pydantic import ValidationError

from .deadletter import dead_letter, describe_error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .service import ServiceKit

log = logging.getLogger(__name__)


class DeadLetterMiddleware(BaseMiddleware):
    """An invalid payload goes to ``dlq.<subject>`` with the reason and is termed.

    The consumer never sees it again and never crashes on it; every other error follows the
    subscriber's acknowledgement policy (nak and redelivery).
    """

    kit: ServiceKit

    @classmethod
    def factory(cls, kit: ServiceKit) -> Callable[..., DeadLetterMiddleware]:
        def build(msg: Any, /, *, context: ContextRepo) -> DeadLetterMiddleware:
            mw = cls(msg, context=context)
            mw.kit = kit
            return mw

        return build

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        try:
            return await call_next(msg)
        except ValidationError as exc:
            await dead_letter(
                self.kit.nc, msg.raw_message, describe_error(exc), self.kit.metrics, term=False
            )
            await msg.reject()
            return None
