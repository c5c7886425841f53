"""Publishing events to JetStream with their deterministic id as ``Nats-Msg-Id``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry import propagate


class Routable(Protocol):
    """An event that knows its subject (every model in the contracts catalogue)."""

    @property
    def event_id(self) -> str: ...

    def subject(self) -> str: ...

    def model_dump_json(self) -> str: ...


def headers_for(event: Routable, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Dedupe id plus the current trace context, so spans link across services."""
    headers = {"Nats-Msg-Id": event.event_id, "Content-Type": "application/json"}
    propagate.inject(headers)
    if extra:
        headers.update(extra)
    return headers


async def publish(js: JetStreamContext, event: Routable, *, timeout: float = 5.0) -> PubAck:
    """Publish one event and wait for JetStream to store it (control-plane pace)."""
    return await js.publish(
        event.subject(),
        event.model_dump_json().encode(),
        timeout=timeout,
        headers=headers_for(event),
    )


async def publish_many(
    js: JetStreamContext, events: Iterable[Routable], *, window: int = 1000, timeout: float = 10.0
) -> list[PubAck]:
    """Publish many events with pipelined acks (``publish_async``), never one awaited ack per
    item; raises if JetStream refuses any of them (the ones before it are stored)."""
    acks: list[PubAck] = []
    pending: list[asyncio.Future[PubAck]] = []

    async def settle() -> None:
        acks.extend(await asyncio.wait_for(asyncio.gather(*pending), timeout))
        pending.clear()

    for event in events:
        pending.append(
            await js.publish_async(
                event.subject(), event.model_dump_json().encode(), headers=headers_for(event)
            )
        )
        if len(pending) >= window:
            await settle()
    if pending:
        await settle()
    return acks
