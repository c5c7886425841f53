"""A FastStream handler on a contract's durable consumer, under the service's own NATS user:
poison is dead-lettered and termed, good events are handled once and acked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from faststream.nats import NatsRouter
from hms_contracts import specs, subjects, topology
from hms_contracts.events import AlertFiring
from hms_kit import ServiceKit, ServiceSettings, provision, provision_shared, publish
from hms_kit.deadletter import REASON
from hms_kit.subscribe import durable_subscriber
from hms_kit.testing import running, wait_until
from hms_kit.testing.plugin import connect
from hms_kit.testing.servers import open_nats

PASSWORD = "pw-incident"


def alert(ns: str, value: float) -> AlertFiring:
    return AlertFiring.create(
        occurred_at=datetime.now(UTC),
        namespace=ns,
        rule_id="latency_p99",
        metric="api.latency_p99",
        fingerprint="a1b2c3d4e5f60718",
        value=value,
        operator=">",
        threshold=1000.0,
        severity="critical",
        summary="p99 latency above 1000 ms for 5m",
        labels={},
        started_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        for_s=300.0,
    )


async def test_durable_faststream_subscriber_dead_letters_poison_and_acks_good_events(
    tmp_path: Path,
) -> None:
    svc = topology.service("incident-engine")
    server = open_nats(
        tmp_path / "nats",
        users={
            "admin": {"password": "admin"},
            "hms-incident-engine": {
                "password": PASSWORD,
                "permissions": topology.nats_permissions(svc),
            },
        },
    )
    admin = await connect(server.url.replace("nats://", "nats://admin:admin@"))
    try:
        js = admin.jetstream()
        await provision(js, streams=(specs.ALERTS,))
        await provision_shared(js)  # the admin's part: DLQ and buckets
        handled: list[AlertFiring] = []
        router = NatsRouter()

        @durable_subscriber(router, specs.INCIDENT_ALERTS, service=svc.name)
        async def on_alert(event: AlertFiring) -> None:
            handled.append(event)

        settings = ServiceSettings(
            nats_url=server.url,
            nats_user="hms-incident-engine",
            nats_password=PASSWORD,  # type: ignore[arg-type]
            heartbeat_interval_s=60,
        )
        kit = ServiceKit(svc.name, settings, version="t", routers=(router,))
        async with running(kit):
            poison_subject = subjects.ALERT.subject("usds_unemployment", "firing")
            await js.publish(poison_subject, b'{"value": "high"}', headers={"Nats-Msg-Id": "p1"})
            good = alert("usds_unemployment", 1250.0)
            await publish(js, good)
            await publish(js, good)  # a retry: JetStream dedupes it by its id
            await wait_until(lambda: handled, timeout=10, message="the good alert handled")
            dlq = await js.pull_subscribe(subjects.dlq(poison_subject), durable="t", stream="DLQ")
            (dead,) = await dlq.fetch(1, timeout=5)

            async def settled() -> bool:
                info = await js.consumer_info("ALERTS", specs.INCIDENT_ALERTS.durable)
                return bool(info.num_ack_pending == 0 and info.num_pending == 0)

            await wait_until(settled, timeout=10, message="nothing pending on the consumer")
            await asyncio.sleep(0.5)
            registry = kit.metrics.registry
            assert registry.get_sample_value("hms_nats_permission_violations_total") == 0
        assert handled == [good]
        assert dead.headers is not None
        assert "occurred_at: Field required" in dead.headers[REASON]
        assert dead.data == b'{"value": "high"}'
    finally:
        await admin.close()
        server.stop()
