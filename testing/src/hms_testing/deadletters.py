"""Reading the dead-letter stream in tests."""

from __future__ import annotations

from hms_contracts import specs, subjects
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .waiting import wait_until


async def dead_letters(
    js: JetStreamContext, subject: str, expected: int, *, timeout: float = 10
) -> list[Msg]:
    """The dead letters of ``subject``, oldest first, once ``expected`` of them are there
    (an ephemeral consumer on the DLQ, removed afterwards)."""
    sub = await js.pull_subscribe(subjects.dlq(subject), stream=specs.DLQ.name)
    got: list[Msg] = []

    async def enough() -> bool:
        got.extend(await sub.fetch(expected - len(got), timeout=0.5))
        return len(got) >= expected

    try:
        await wait_until(enough, timeout=timeout, message=f"{expected} dead letters of {subject}")
    finally:
        await sub.unsubscribe()
    return got
