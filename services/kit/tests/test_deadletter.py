"""Poison messages go to the DLQ with their reason; the consumer goes on with the next one."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faststream.nats import NatsRouter
from hms_contracts import specs, subjects
from hms_contracts.base import Event
from hms_kit import (
    BatchConsumer,
    Delivery,
    Service,
    ServiceSettings,
    ensure_consumer,
    ensure_stream,
)
from hms_kit import publish as publish_event
from hms_kit.deadletter import REASON, SUBJECT
from hms_testing import NatsHandle, ServiceLauncher, running, wait_until
from hms_testing.deadletters import dead_letters
from hms_testing.probe import (
    PROBE_RUNS,
    QUEUE,
    ProbeItem,
    ProbeStore,
    database_path,
    read_done,
    start_probe,
)
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import Field


def namespace() -> str:
    """A namespace of this test's own, so a shared server (NATS_URL) cannot mix runs."""
    return f"acme_{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Poison:
    """Two poison messages and three good items, on one namespace's probe queue."""

    ns: str = field(default_factory=namespace)

    @property
    def subject(self) -> str:
        return subjects.JOB_RUN.subject(self.ns, QUEUE)

    @property
    def not_json(self) -> bytes:
        return b'{"event_id": "%s-poison-1", ' % self.ns.encode()

    @property
    def not_an_item(self) -> bytes:
        fields = {"occurred_at": "2025-01-01T00:00:00Z", "namespace": self.ns, "item": "many"}
        return json.dumps({"event_id": f"{self.ns}-poison-2", **fields}).encode()

    def item(self, i: int) -> ProbeItem:
        now = datetime.now(UTC)
        return ProbeItem(event_id=f"{self.ns}-item-{i}", occurred_at=now, namespace=self.ns, item=i)

    def good_ids(self) -> list[str]:
        return [self.item(i).event_id for i in range(3)]

    async def publish(self, js: JetStreamContext) -> None:
        await js.publish(self.subject, self.not_json, headers={"Nats-Msg-Id": f"{self.ns}-p1"})
        await js.publish(self.subject, self.not_an_item, headers={"Nats-Msg-Id": f"{self.ns}-p2"})
        for i in range(3):
            await publish_event(js, self.item(i))


async def assert_poison_dead_lettered_and_termed(
    js: JetStreamContext, db: Path, poison: Poison
) -> None:
    await wait_until(lambda: len(read_done(db)) == 3, timeout=10, message="3 good items stored")
    assert sorted(read_done(db)) == poison.good_ids()
    bad_json, bad_item = await dead_letters(js, poison.subject, 2)
    for dead, body in ((bad_json, poison.not_json), (bad_item, poison.not_an_item)):
        assert dead.subject == subjects.dlq(poison.subject)
        assert dead.data == body
        assert dead.headers is not None
        assert dead.headers[SUBJECT] == poison.subject
    assert bad_json.headers is not None
    assert "Invalid JSON" in bad_json.headers[REASON]
    assert bad_item.headers is not None
    assert "item: Input should be a valid integer" in bad_item.headers[REASON]

    async def settled() -> bool:
        info = await js.consumer_info(PROBE_RUNS.stream, PROBE_RUNS.durable)
        return (info.num_pending, info.num_ack_pending) == (0, 0)

    await wait_until(settled, timeout=5, message="nothing pending or awaiting an ack")
    # termed, not redelivered: after the first backoff step nothing has come back
    await asyncio.sleep(PROBE_RUNS.backoff_s[0] + 0.2)
    assert await settled()
    dlq = await js.stream_info(specs.DLQ.name, subjects_filter=subjects.dlq(poison.subject))
    assert dlq.state.subjects == {subjects.dlq(poison.subject): 2}, "dead-lettered once each"


async def test_poison_message_lands_in_dlq_with_reason_and_batch_consumer_goes_on(
    nc: Client, js: JetStreamContext, tmp_path: Path
) -> None:
    await ensure_stream(js, specs.JOB_RUNS)
    await ensure_stream(js, specs.DLQ)
    await ensure_consumer(js, PROBE_RUNS)
    store = await ProbeStore.open(tmp_path / "probe.sqlite3")

    async def handle(batch: Sequence[Delivery[ProbeItem]]) -> None:
        await store.record(batch)

    consumer = BatchConsumer(nc, PROBE_RUNS, ProbeItem, handle, fetch_timeout=0.2)
    task = asyncio.create_task(consumer.run())
    try:
        poison = Poison()
        await poison.publish(js)
        await assert_poison_dead_lettered_and_termed(js, tmp_path / "probe.sqlite3", poison)
        assert not task.done()
    finally:
        task.cancel()
        await store.close()


@pytest.mark.slow
async def test_poison_message_lands_in_dlq_and_probe_service_goes_on(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    probe = await start_probe(start_service, js)
    poison = Poison()
    await poison.publish(js)
    await assert_poison_dead_lettered_and_termed(js, database_path(probe.state_dir), poison)
    assert probe.returncode is None
    status, _ = await probe.healthz()
    assert status == 200


class Greeting(Event):
    """A control-plane event for the FastStream path."""

    text: str = Field(description="What to say")


async def test_invalid_payload_to_a_faststream_handler_is_dead_lettered_with_its_reason(
    nats_server: NatsHandle, nc: Client, js: JetStreamContext
) -> None:
    ns = namespace()
    subject = subjects.AUDIT.subject(ns, "greeting")
    handled: list[Greeting] = []
    router = NatsRouter()

    @router.subscriber(subject)
    async def on_greeting(event: Greeting) -> None:
        handled.append(event)

    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=60)
    service = Service("console", settings, version="t", routers=(router,))
    async with running(service):
        await nc.publish(subject, b'{"event_id": "g-1", "text": 42}')
        (dead,) = await dead_letters(js, subject, 1)
        good = Greeting(event_id="g-2", occurred_at=datetime.now(UTC), namespace=ns, text="hi")
        await nc.publish(subject, good.model_dump_json().encode())
        await wait_until(lambda: handled, timeout=5, message="the valid greeting handled")
    assert handled == [good]
    assert dead.subject == subjects.dlq(subject)
    assert dead.headers is not None
    reason = dead.headers[REASON]
    assert "occurred_at: Field required" in reason
    assert "text: Input should be a valid string" in reason
