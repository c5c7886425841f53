"""What the console asks of the world, as small protocols with a real adapter each."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from hms_contracts import AuditRecorded
from hms_contracts.commands import CommandReplied, CommandRequested

from .core.policy import Principal


class OnCall(Protocol):
    """Who is on call now for a namespace (the on-call schedules are another service's:
    until they exist, nobody is, and manual overrides are the admins')."""

    async def is_on_call(self, principal: Principal, namespace: str, now: datetime) -> bool: ...


class AuditLog(Protocol):
    """Appends to a namespace's hash-chained audit log."""

    async def record(
        self, namespace: str, actor: str, action: str, target: str, detail: Mapping[str, str]
    ) -> AuditRecorded: ...


class Commands(Protocol):
    """Sends a command to the service that owns it and waits for its answer."""

    async def send(self, request: CommandRequested, timeout: float) -> CommandReplied: ...
