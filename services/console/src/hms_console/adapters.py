"""The console's I/O: commands as NATS requests, the audit chain, the on-call port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from hms_contracts import AuditRecorded, specs
from hms_contracts import subjects as s
from hms_contracts.commands import CommandReplied, CommandRequested
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pydantic import ValidationError

from .core.policy import Principal
from .errors import AnswerTimedOut, BadAnswer, NobodyAnswers

log = logging.getLogger(__name__)

_WRONG_LAST_SEQUENCE = 10071


class AdminsOnly:
    """Nobody is on call until the on-call schedules exist: overrides are the admins'."""

    async def is_on_call(self, principal: Principal, namespace: str, now: datetime) -> bool:
        return False


class BusCommands:
    """A command is a NATS request on ``ops.request.<ns>.<command>``; 503 when nobody
    listens, 504 when nobody answers in time."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc

    async def send(self, request: CommandRequested, timeout: float) -> CommandReplied:
        subject = request.subject()
        try:
            msg = await self.nc.request(
                subject, request.model_dump_json().encode(), timeout=timeout
            )
        except NoRespondersError:
            raise NobodyAnswers(
                f"nobody answers {subject} yet (the service that owns {request.command} is not "
                "running or not built yet); nothing was done"
            ) from None
        except (TimeoutError, NatsTimeout):
            raise AnswerTimedOut(
                f"no answer on {subject} within {timeout:g}s; the command may or may not have "
                "been done: check the incident's timeline before retrying"
            ) from None
        try:
            return CommandReplied.model_validate_json(msg.data)
        except ValidationError as exc:
            raise BadAnswer(f"the answer on {subject} is not a CommandReplied: {exc}") from None


class BusAuditLog:
    """Appends AuditRecorded to ``ops.audit.<ns>.recorded``, chained to the last record on
    that subject; the append is conditional on the subject's last sequence, so two writers
    never fork the chain (the loser reads the new last record and tries again)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._lock = asyncio.Lock()

    async def _last(self, subject: str) -> tuple[AuditRecorded | None, int]:
        try:
            msg = await self.js.get_last_msg(specs.AUDIT.name, subject)
        except NotFoundError:
            return None, 0
        if msg.data is None or msg.seq is None:
            return None, 0
        return AuditRecorded.model_validate_json(msg.data), msg.seq

    async def record(
        self, namespace: str, actor: str, action: str, target: str, detail: Mapping[str, str]
    ) -> AuditRecorded:
        subject = s.AUDIT.subject(namespace, "recorded")
        async with self._lock:
            for _ in range(20):
                previous, seq = await self._last(subject)
                entry = AuditRecorded.chain(
                    previous,
                    namespace=namespace,
                    occurred_at=datetime.now(UTC),
                    actor=actor,
                    action=action,
                    target=target,
                    detail=dict(detail),
                )
                headers = {
                    "Nats-Msg-Id": entry.event_id,
                    "Nats-Expected-Last-Subject-Sequence": str(seq),
                }
                try:
                    await self.js.publish(
                        subject, entry.model_dump_json().encode(), headers=headers
                    )
                    return entry
                except APIError as exc:
                    if exc.err_code != _WRONG_LAST_SEQUENCE:
                        raise
                    log.info("audit chain of %s moved on; chaining again", namespace)
            raise RuntimeError(f"could not append to the audit chain of {namespace}")
