"""A message's fate: a handler's own error is retried with the consumer's backoff and
dead-lettered only after the last delivery; ``Retry`` and ``Reject`` state the fate outright.
Both on the FastStream path (the dead-letter middleware) and the hot path (``BatchConsumer``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

from faststream.nats import NatsRouter
from hms_contracts import AlertFiring, AlertResolved, specs, subjects
from hms_kit import BatchConsumer, Delivery, Reject, Retry, Service, ServiceSettings, provision
from hms_kit import publish as publish_event
from hms_kit.deadletter import REASON
from hms_kit.subscribe import durable_subscriber
from hms_testing import NatsHandle, running, wait_until
from hms_testing.deadletters import dead_letters
from hms_testing.probe import ProbeItem
from hms_testing.samples import alert_firing
from nats.aio.client import Client
from nats.js import JetStreamContext

NS = "usds_unemployment"
ALERTS_FATE = specs.ConsumerSpec(
    stream=specs.ALERTS.name,
    durable="kit_fate",
    filter_subjects=(AlertFiring.subject_pattern(),),
    ack_wait_s=0.5,
    max_deliver=3,
    backoff_s=(0.5, 0.2),
    description="A short-backoff consumer for fate tests",
)
RUNS_FATE = specs.ConsumerSpec(
    stream=specs.JOB_RUNS.name,
    durable="kit_fate_batch",
    filter_subjects=(subjects.JOB_RUN.wildcard(),),
    ack_wait_s=0.5,
    max_deliver=3,
    backoff_s=(0.5, 0.2),
    description="A short-backoff batch consumer for fate tests",
)


def probe_item(i: int) -> ProbeItem:
    return ProbeItem(event_id=f"fate-{i}", occurred_at=datetime.now(UTC), namespace=NS, item=i)


async def dlq_count(js: JetStreamContext, subject: str) -> int:
    info = await js.stream_info(specs.DLQ.name, subjects_filter=subjects.dlq(subject))
    return sum((info.state.subjects or {}).values())


async def settled(js: JetStreamContext, spec: specs.ConsumerSpec) -> bool:
    info = await js.consumer_info(spec.stream, spec.durable)
    return (info.num_pending, info.num_ack_pending) == (0, 0)


def alert_kit(nats_server: NatsHandle, router: NatsRouter) -> Service:
    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=60)
    return Service(
        "incident-engine", settings, version="t", routers=(router,), consumers=(ALERTS_FATE,)
    )


async def test_handler_error_is_retried_with_backoff_and_dead_lettered_after_the_last_delivery(
    nats_server: NatsHandle, js: JetStreamContext
) -> None:
    await provision(js, streams=(specs.ALERTS, specs.DLQ))
    attempts: list[datetime] = []
    router = NatsRouter()

    async def on_firing(event: AlertFiring) -> None:
        attempts.append(datetime.now(UTC))
        # a handler bug: building the outgoing event fails validation
        AlertResolved.model_validate({"namespace": event.namespace})

    durable_subscriber(router, ALERTS_FATE, {AlertFiring: on_firing}, service="incident-engine")
    async with running(alert_kit(nats_server, router)):
        alert = alert_firing()
        await publish_event(js, alert)
        (dead,) = await dead_letters(js, alert.subject(), 1)
        await wait_until(lambda: settled(js, ALERTS_FATE), timeout=5, message="settled")
    assert len(attempts) == ALERTS_FATE.max_deliver, "redelivered until max_deliver"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= ALERTS_FATE.backoff_s[0] * 0.9, f"nak with the first backoff step: {gaps}"
    assert dead.headers is not None
    assert dead.headers[REASON].startswith("failed 3 deliveries: invalid ValidationError")
    assert "occurred_at: Field required" in dead.headers[REASON]
    assert dead.data == alert.model_dump_json().encode()


async def test_retry_from_a_handler_redelivers_after_its_delay_without_dead_lettering(
    nats_server: NatsHandle, js: JetStreamContext
) -> None:
    await provision(js, streams=(specs.ALERTS, specs.DLQ))
    attempts: list[int] = []
    handled: list[AlertFiring] = []
    router = NatsRouter()

    async def on_firing(event: AlertFiring) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise Retry("the store is busy", delay_s=0.1)
        handled.append(event)

    durable_subscriber(router, ALERTS_FATE, {AlertFiring: on_firing}, service="incident-engine")
    async with running(alert_kit(nats_server, router)):
        alert = alert_firing()
        await publish_event(js, alert)
        await wait_until(lambda: handled, timeout=5, message="handled on the second delivery")
        await wait_until(lambda: settled(js, ALERTS_FATE), timeout=5, message="settled")
        assert await dlq_count(js, alert.subject()) == 0
    assert attempts == [1, 2]
    assert handled == [alert]


async def test_reject_from_a_handler_dead_letters_at_once_with_its_reason(
    nats_server: NatsHandle, js: JetStreamContext
) -> None:
    await provision(js, streams=(specs.ALERTS, specs.DLQ))
    attempts: list[AlertFiring] = []
    router = NatsRouter()

    async def on_firing(event: AlertFiring) -> None:
        attempts.append(event)
        raise Reject("no playbook named 'rollback' in namespace usds_unemployment")

    durable_subscriber(router, ALERTS_FATE, {AlertFiring: on_firing}, service="incident-engine")
    async with running(alert_kit(nats_server, router)):
        alert = alert_firing()
        await publish_event(js, alert)
        (dead,) = await dead_letters(js, alert.subject(), 1)
        await wait_until(lambda: settled(js, ALERTS_FATE), timeout=5, message="settled")
        await asyncio.sleep(ALERTS_FATE.ack_wait_s + 0.2)  # termed: it does not come back
    assert len(attempts) == 1
    assert dead.headers is not None
    assert dead.headers[REASON] == "no playbook named 'rollback' in namespace usds_unemployment"


async def test_batch_handler_error_naks_with_backoff_and_dead_letters_after_the_last_delivery(
    nc: Client, js: JetStreamContext
) -> None:
    await provision(js, streams=(specs.JOB_RUNS, specs.DLQ), consumers=(RUNS_FATE,))
    calls: list[int] = []

    async def handle(batch: Sequence[Delivery[ProbeItem]]) -> None:
        calls.append(batch[0].attempt)
        raise RuntimeError("the projection is locked")

    task = asyncio.create_task(BatchConsumer(nc, RUNS_FATE, ProbeItem, handle).run())
    try:
        item = probe_item(1)
        await publish_event(js, item)
        (dead,) = await dead_letters(js, item.subject(), 1)
    finally:
        task.cancel()
    assert calls == [1, 2, 3]
    assert dead.headers is not None
    assert dead.headers[REASON] == "failed 3 deliveries: RuntimeError: the projection is locked"


async def test_batch_handler_reject_dead_letters_the_batch_at_once_and_retry_redelivers_it(
    nc: Client, js: JetStreamContext
) -> None:
    await provision(js, streams=(specs.JOB_RUNS, specs.DLQ), consumers=(RUNS_FATE,))
    seen: list[tuple[int, int]] = []
    done: list[int] = []

    async def handle(batch: Sequence[Delivery[ProbeItem]]) -> None:
        for d in batch:
            seen.append((d.event.item, d.attempt))
        if batch[0].event.item == 1:
            raise Reject("item 1 names no known queue")
        if batch[0].attempt == 1:
            raise Retry(delay_s=0.1)
        done.extend(d.event.item for d in batch)

    task = asyncio.create_task(BatchConsumer(nc, RUNS_FATE, ProbeItem, handle).run())
    try:
        rejected = probe_item(1)
        await publish_event(js, rejected)
        (dead,) = await dead_letters(js, rejected.subject(), 1)
        await publish_event(js, probe_item(2))
        await wait_until(lambda: done == [2], timeout=5, message="item 2 done after one retry")
        await wait_until(lambda: settled(js, RUNS_FATE), timeout=5, message="settled")
    finally:
        task.cancel()
    assert seen == [(1, 1), (2, 1), (2, 2)]
    assert dead.headers is not None
    assert dead.headers[REASON] == "item 1 names no known queue"
