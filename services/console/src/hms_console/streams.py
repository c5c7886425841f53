"""Reading a stream's messages once, oldest first, with a short-lived ordered consumer."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from hms_contracts import BusEvent, decode, specs
from hms_contracts import subjects as s
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

Message = tuple[int, str, bytes, dict[str, str]]


async def browse(
    js: JetStreamContext,
    stream: str,
    subjects: Sequence[str],
    limit: int,
    since: datetime | None = None,
) -> list[Message]:
    """Up to ``limit`` messages of ``stream`` under ``subjects`` (from ``since``), oldest first:
    (stream sequence, subject, data, headers)."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    if info.state.messages == 0:
        return []
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, filter_subjects=list(subjects))
    if since is not None:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=since,
            filter_subjects=list(subjects),
        )
    found: list[Message] = []
    sub = await js.subscribe(subjects[0], stream=stream, ordered_consumer=True, config=config)
    try:
        last = info.state.last_seq
        while len(found) < limit:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                break
            meta = msg.metadata
            found.append((meta.sequence.stream, msg.subject, msg.data, dict(msg.headers or {})))
            if meta.sequence.stream >= last or meta.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found


async def namespace_events(
    js: JetStreamContext, namespace: str, since: datetime, limit: int = 1_000_000
) -> list[BusEvent]:
    """A namespace's run, alert, breach, incident and SLO status events from ``since`` on."""
    feeds = (
        (specs.JOB_EVENTS.name, [s.JOB_EVENT.wildcard(namespace)]),
        (specs.ALERTS.name, [s.ALERT.wildcard(namespace), s.SLA_BREACH.wildcard(namespace)]),
        (
            specs.INCIDENTS.name,
            [s.INCIDENT.wildcard(namespace), s.INCIDENT_CLOSED.wildcard(namespace)],
        ),
        (specs.SLOS.name, [s.SLO.wildcard(namespace)]),
    )
    events: list[BusEvent] = []
    for stream, subjects in feeds:
        for _, subject, data, _ in await browse(js, stream, subjects, limit, since):
            with contextlib.suppress(Exception):  # not ours to judge: the owner dead-letters
                events.append(decode(subject, data))
    return events
