"""The agency SDK against a real nats-server: sync and async forms, metrics, events, feeds."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime

import pytest
from hms_contracts import IncidentOpened, MetricSampleBatch, specs
from hms_contracts.config import ConfigEntry
from hms_ops import NOC, Alert, ConnectError, InvalidObject, Metric, Playbook
from hms_ops.noc import AsyncNOC
from nats.aio.client import Client

from .conftest import NS, PASSWORDS, Secured


async def samples_in_stream(admin: Client) -> list[MetricSampleBatch]:
    js = admin.jetstream()
    info = await js.stream_info(specs.METRICS.name)
    return [
        MetricSampleBatch.model_validate_json(
            (await js.get_msg(specs.METRICS.name, seq)).data or b""
        )
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
        if info.state.messages
    ]


def incident(n: int) -> IncidentOpened:
    return IncidentOpened.create(
        namespace=NS,
        occurred_at=datetime.now(UTC),
        incident_id=f"inc-{n}",
        title=f"latency high #{n}",
        severity="critical",
        cause="manual",
    )


async def file_incident(admin: Client, n: int) -> None:
    event = incident(n)
    await admin.jetstream().publish(
        event.subject(), event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.event_id}
    )


async def test_the_async_client_registers_the_documents_objects(
    secured: Secured, admin: Client
) -> None:
    async with NOC.aconnect("USDS_Unemployment", **secured.client(NS)) as noc:
        alert = Alert(
            name="sla_latency_breach", metric="api.latency_p99", condition="> 1000", window="5m"
        )
        alert.set_playbook(Playbook.steps(["kubectl rollout undo deploy/benefits-api"]))
        changes = await noc.register(Metric(name="api.latency_p99", unit="ms"), alert)
    assert [c.key for c in changes] == [
        f"{NS}.metric.api.latency_p99",
        f"{NS}.playbook.sla_latency_breach",
        f"{NS}.alert.sla_latency_breach",
    ]
    kv = await admin.jetstream().key_value("hms_config")
    entry = ConfigEntry.model_validate_json(
        (await kv.get(f"{NS}.alert.sla_latency_breach")).value or b""
    )
    assert entry.object["playbook"] == "sla_latency_breach"
    assert entry.author == f"ns-{NS}"


async def test_the_sync_client_does_the_same_from_blocking_code(
    secured: Secured, admin: Client
) -> None:
    def blocking() -> None:
        noc = NOC.connect("usds_unemployment", **secured.client(NS))
        try:
            assert noc.namespace == NS
            noc.register(Metric(name="api.errors"))
            noc.observe("api.errors", 1.0, labels={"route": "/claims"})
            event = noc.publish("deploy_finished", {"version": "1.4.2"}, key="deploy-42")
            assert event.subject() == f"ops.event.{NS}.deploy_finished"
        finally:
            noc.close()

    await asyncio.to_thread(blocking)
    [batch] = await samples_in_stream(admin)
    assert [(s.name, s.value, s.labels) for s in batch.samples] == [
        ("api.errors", 1.0, {"route": "/claims"})
    ]
    assert batch.event_id == batch.expected_event_id()


async def test_a_blocking_for_loop_over_incidents_sees_them_as_they_come(
    secured: Secured, admin: Client
) -> None:
    subscribed = threading.Event()

    def blocking() -> list[str]:
        seen: list[str] = []
        with NOC.connect(NS, **secured.client(NS)) as noc:
            feed = noc.incidents()
            subscribed.set()
            for event in feed:  # the documents' `for e in noc.incidents():`
                assert isinstance(event, IncidentOpened)
                seen.append(event.incident_id)
                if len(seen) == 3:
                    break
            feed.close()
        return seen

    reader = asyncio.create_task(asyncio.to_thread(blocking))
    await asyncio.to_thread(subscribed.wait, 10)
    for n in (1, 2, 3):
        await file_incident(admin, n)
    assert await asyncio.wait_for(reader, 15) == ["inc-1", "inc-2", "inc-3"]


async def test_buffered_metrics_survive_close(secured: Secured, admin: Client) -> None:
    noc = await NOC.aconnect(NS, **secured.client(NS), batch_size=1000, flush_interval=60)
    for i in range(2500):
        noc.observe("api.latency_ms", float(i), unit="ms")
    await noc.close()
    batches = await samples_in_stream(admin)
    assert [len(b.samples) for b in batches] == [1000, 1000, 500]
    values = [s.value for b in batches for s in b.samples]
    assert values == [float(i) for i in range(2500)]


async def test_a_full_buffer_drops_the_oldest_and_counts_them(
    secured: Secured, admin: Client
) -> None:
    noc = await AsyncNOC.open(
        NS,
        url=secured.url,
        user=f"ns-{NS}",
        password=PASSWORDS[NS],
        batch_size=100,
        max_buffer=100,
        flush_interval=60,
    )
    noc._flusher.cancel()  # nothing leaves the buffer until close
    for i in range(150):
        noc.buffer.add("api.latency_ms", float(i))
    assert noc.dropped == 50
    await noc.close()
    [batch] = await samples_in_stream(admin)
    assert [s.value for s in batch.samples] == [float(i) for i in range(50, 150)]


async def test_a_durable_incident_subscription_resumes_where_it_left_off(
    secured: Secured, admin: Client
) -> None:
    noc = await NOC.aconnect(NS, **secured.client(NS))
    feed = await noc.incidents(durable="my-app")
    for n in (1, 2, 3):
        await file_incident(admin, n)
    seen = [await feed.next(5), await feed.next(5)]
    await noc.close()  # the second is acknowledged on close; the third was never handed out
    await file_incident(admin, 4)
    async with NOC.aconnect(NS, **secured.client(NS)) as again:
        feed = await again.incidents(durable="my-app")
        resumed = [await feed.next(5), await feed.next(5)]
    assert [e.incident_id for e in seen] == ["inc-1", "inc-2"]
    assert [e.incident_id for e in resumed] == ["inc-3", "inc-4"]


async def test_a_live_subscription_sees_incidents_typed(secured: Secured, admin: Client) -> None:
    async with NOC.aconnect(NS, **secured.client(NS)) as noc:
        feed = await noc.incidents()
        await file_incident(admin, 7)
        event = await feed.next(5)
    assert isinstance(event, IncidentOpened)
    assert event.incident_id == "inc-7"


def test_declarations_are_validated_at_once_naming_the_field() -> None:
    with pytest.raises(InvalidObject, match=r"condition: .*operator"):
        Alert(name="slow", metric="api.latency_p99", condition="above 1000")
    with pytest.raises(InvalidObject, match="source"):
        Metric(name="api.latency_p99", source="ftp://benefits.gov")
    with pytest.raises(InvalidObject, match="window"):
        Alert(name="slow", metric="m", condition="> 1", window="five minutes")


async def test_an_invalid_namespace_is_refused_with_the_rule(secured: Secured) -> None:
    with pytest.raises(ConnectError, match="lower-case letters"):
        await NOC.aconnect("usds-unemployment", **secured.client(NS))


async def test_nothing_listening_and_bad_credentials_are_told_apart(secured: Secured) -> None:
    with pytest.raises(ConnectError, match=r"refused ns-usds_unemployment .*bad or revoked"):
        await NOC.aconnect(NS, url=secured.url, user=f"ns-{NS}", password="wrong")
    secured.server.stop()
    with pytest.raises(ConnectError, match="cannot connect to"):
        await NOC.aconnect(NS, url=secured.url, user=f"ns-{NS}", password="x")


async def test_no_stack_anywhere_says_where_it_looked(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("HMS_NATS_URL", raising=False)
    monkeypatch.setenv("HMS_STATE_DIR", str(tmp_path / "nothing"))
    with pytest.raises(ConnectError, match=r"no local stack in .*nothing"):
        await NOC.aconnect(NS)


def test_samples_encode_as_the_model_would(secured: Secured) -> None:
    from hms_ops.samples import Buffer, Encoder

    encoder = Encoder(NS, "sdk")
    buffer = Buffer(encoder, 10)
    buffer.add("api.latency_ms", 183.25, {"b": "2", "a": "é"}, "ms", at=1_700_000_000_123_456)
    buffer.add("api.latency_ms", 0.5, {"a": "é", "b": "2"}, "ms", at=1_700_000_001_000_000)
    event_id, body = encoder.encode(buffer.take(10))
    batch = MetricSampleBatch.model_validate_json(body)
    assert batch.expected_event_id() == event_id == batch.event_id
    # the bytes are the model's own writing, to the microsecond and for a whole second
    assert json.loads(body)["samples"] == json.loads(batch.model_dump_json())["samples"]
    assert [s.observed_at.timestamp() for s in batch.samples] == [
        1_700_000_000.123456,
        1_700_000_001,
    ]
    assert json.loads(body)["samples"][0]["labels"] == {"a": "é", "b": "2"}


def test_a_metric_ttl_travels_with_every_batch() -> None:
    from hms_ops.samples import Buffer, Encoder

    encoder = Encoder(NS, "sdk", ttl_s=300)
    buffer = Buffer(encoder, 10)
    buffer.add("deploy.version", 142.0, at=1_700_000_000_000_000)
    event_id, body = encoder.encode(buffer.take(10))
    batch = MetricSampleBatch.model_validate_json(body)
    assert batch.ttl_s == 300.0
    assert batch.event_id == event_id
    with pytest.raises(InvalidObject, match="metric_ttl"):
        Encoder(NS, "sdk", ttl_s=0)
