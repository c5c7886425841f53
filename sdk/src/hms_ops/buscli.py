"""What the CLI's commands on the bus share: an admin connection to the running stack, who is
acting, and appending to a namespace's hash-chained audit log."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import typer
from hms_contracts import SYSTEM_NAMESPACE, AuditRecorded, event_for_subject, specs, subjects
from nats.aio.client import Client
from nats.js.errors import APIError, NotFoundError
from rich.console import Console

from .errors import HmsOpsError, StackError
from .state import ADMIN_USER, StatePaths, admin_bus

T = TypeVar("T")
TIMEOUT_S = 30.0
err = Console(stderr=True)


class AuditError(HmsOpsError):
    """The audit record could not be appended."""


def on_bus(paths: StatePaths, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``work`` with an admin connection to the stack at ``paths``; errors become one
    line and an exit code."""

    async def go() -> T:
        async with admin_bus(paths) as nc:
            return await work(nc)

    try:
        return asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))
    except TimeoutError:
        err.print(f"[red]error:[/] the stack running from {paths.root} did not answer in time")
        raise typer.Exit(2) from None
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except HmsOpsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


def actor() -> str:
    """Who is replaying: ``HMS_ACTOR``, else the login name, and the credential used."""
    who = os.environ.get("HMS_ACTOR") or getpass.getuser()
    return f"{who} (as {ADMIN_USER})"


def namespace_of(subject: str) -> str:
    model = event_for_subject(subject)
    if model is None:
        return SYSTEM_NAMESPACE
    return model.family.namespace_of(subject)


async def audit(
    nc: Client, namespace: str, who: str, action: str, target: str, detail: dict[str, str]
) -> AuditRecorded:
    """Append a record to ``namespace``'s audit chain (compare-and-set on its last record,
    retried when another writer got there first)."""
    js = nc.jetstream()
    subject = subjects.AUDIT.subject(namespace, "recorded")
    for _ in range(20):
        try:
            last_msg = await js.get_last_msg(specs.AUDIT.name, subject)
            previous: AuditRecorded | None = AuditRecorded.model_validate_json(last_msg.data or b"")
            last_seq = last_msg.seq or 0
        except NotFoundError:
            previous, last_seq = None, 0
        record = AuditRecorded.chain(
            previous,
            namespace=namespace,
            occurred_at=datetime.now(UTC),
            actor=who,
            action=action,
            target=target,
            detail=detail,
        )
        headers = {
            "Nats-Msg-Id": record.event_id,
            "Nats-Expected-Last-Subject-Sequence": str(last_seq),
        }
        try:
            await js.publish(subject, record.model_dump_json().encode(), headers=headers)
            return record
        except APIError as exc:
            if exc.err_code != 10071:  # wrong last sequence: someone appended first
                raise
    raise AuditError(f"the audit chain of {namespace!r} kept moving; try again")
