"""FastStream handlers on a contract's durable consumer, under the service's own NATS user:
each event type the consumer carries reaches its own handler; poison is dead-lettered and
termed; good events are handled once and acked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from faststream.nats import NatsRouter
from hms_contracts import (
    AlertFiring,
    AlertResolved,
    RunProgressed,
    RunStarted,
    SlaBreached,
    run_id_for,
    specs,
    subjects,
    topology,
)
from hms_contracts.bus import BusEvent
from hms_kit import (
    Service,
    ServiceSettings,
    SubscriberError,
    provision,
    provision_shared,
    publish,
)
from hms_kit.deadletter import REASON
from hms_kit.subscribe import Handler, carried_events, durable_subscriber
from hms_testing import NatsHandle, running, wait_until
from hms_testing.plugin import connect
from hms_testing.samples import alert_firing, all_events
from hms_testing.servers import open_nats
from nats.js import JetStreamContext

PASSWORD = "pw-incident"


def resolved_of(firing: AlertFiring) -> AlertResolved:
    fields = firing.model_dump(exclude={"event_id", "for_s", "schema_version"})
    return AlertResolved.create(**{**fields, "resolved_at": firing.occurred_at})


def breach(ns: str) -> SlaBreached:
    now = datetime.now(UTC)
    return SlaBreached.create(
        occurred_at=now,
        namespace=ns,
        reason="deadline_missed",
        job_id="ssa_re_score",
        run_id=run_id_for("ssa_re_score", datetime(2026, 11, 24, tzinfo=UTC)),
        deadline=now - timedelta(minutes=1),
        detail="run not complete 300 minutes after midnight",
    )


async def test_durable_subscriber_routes_by_type_dead_letters_poison_and_acks_good_events(
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
        handled: list[BusEvent] = []
        router = NatsRouter()

        async def on_firing(event: AlertFiring) -> None:
            handled.append(event)

        async def on_resolved(event: AlertResolved) -> None:
            handled.append(event)

        durable_subscriber(
            router,
            specs.INCIDENT_ALERTS,
            {AlertFiring: on_firing, AlertResolved: on_resolved},
            service=svc.name,
            ignore=(SlaBreached,),
        )

        settings = ServiceSettings(
            nats_url=server.url,
            nats_user="hms-incident-engine",
            nats_password=PASSWORD,  # type: ignore[arg-type]
            heartbeat_interval_s=60,
        )
        service = Service(svc.name, settings, version="t", routers=(router,))
        async with running(service):
            poison_subject = subjects.ALERT.subject("usds_unemployment", "firing")
            await js.publish(poison_subject, b'{"value": "high"}', headers={"Nats-Msg-Id": "p1"})
            good = alert_firing("usds_unemployment", 1250.0)
            await publish(js, good)
            await publish(js, good)  # a retry: JetStream dedupes it by its id
            resolved = resolved_of(good)
            await publish(js, resolved)
            await publish(js, breach("usds_unemployment"))
            # a valid alert of another namespace, on this namespace's subject
            stray = alert_firing("usds_unemployment_staging", 1300.0)
            await js.publish(poison_subject, stray.model_dump_json().encode())
            await wait_until(lambda: len(handled) == 2, timeout=10, message="good alerts handled")
            dlq = await js.pull_subscribe(subjects.dlq(poison_subject), durable="t", stream="DLQ")
            dead, wrong_ns = await dlq.fetch(2, timeout=5)

            async def settled() -> bool:
                info = await js.consumer_info("ALERTS", specs.INCIDENT_ALERTS.durable)
                return bool(info.num_ack_pending == 0 and info.num_pending == 0)

            await wait_until(settled, timeout=10, message="nothing pending on the consumer")
            await asyncio.sleep(0.5)
            registry = service.metrics.registry
            assert registry.get_sample_value("hms_nats_permission_violations_total") == 0
        # each good event once (a batch's order is not promised under load)
        assert sorted(handled, key=lambda e: e.event_id) == sorted(
            [good, resolved], key=lambda e: e.event_id
        )
        assert dead.headers is not None
        assert "occurred_at: Field required" in dead.headers[REASON]
        assert dead.data == b'{"value": "high"}'
        assert wrong_ns.headers is not None
        assert "arrived on 'ops.alert.usds_unemployment.firing'" in wrong_ns.headers[REASON]
    finally:
        await admin.close()
        server.stop()


def contract_samples() -> dict[type[BusEvent], BusEvent]:
    """One valid instance per catalogued event, the same samples the contracts test."""
    return {type(e): e for e in all_events()}


def owner_of(spec: specs.ConsumerSpec) -> str:
    return next(s.name for s in topology.SERVICES if spec.durable in s.consumers)


def recorder(into: list[BusEvent]) -> Handler:
    async def handle(event: BusEvent) -> None:
        into.append(event)

    return handle


@pytest.mark.parametrize("spec", specs.CONSUMERS, ids=lambda spec: spec.durable)
async def test_every_event_type_a_contract_consumer_carries_reaches_its_own_handler(
    spec: specs.ConsumerSpec, nats_server: NatsHandle, js: JetStreamContext
) -> None:
    carried = carried_events(spec)
    assert carried, f"consumer {spec.durable} carries no catalogued event"
    samples = contract_samples()
    assert not (missing := [m.__name__ for m in carried if m not in samples]), missing
    await provision(js, streams=(specs.stream_for(spec.stream), specs.DLQ))
    handled: dict[type[BusEvent], list[BusEvent]] = {model: [] for model in carried}
    router = NatsRouter()
    owner = owner_of(spec)
    handlers = {m: recorder(got) for m, got in handled.items()}
    durable_subscriber(router, spec, handlers, service=owner)
    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=60)
    service = Service(owner, settings, version="t", routers=(router,), consumers=(spec,))
    async with running(service):
        for model in carried:
            await publish(js, samples[model])

        async def settled() -> bool:
            info = await js.consumer_info(spec.stream, spec.durable)
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await wait_until(settled, timeout=10, message=f"every event on {spec.durable} acked")
        dlq = await js.stream_info(specs.DLQ.name)
        assert dlq.state.messages == 0, "nothing dead-lettered"
    assert handled == {model: [samples[model]] for model in carried}


def test_durable_subscriber_refuses_a_consumer_with_an_event_type_left_unhandled() -> None:
    handled: list[BusEvent] = []
    with pytest.raises(SubscriberError, match=r"carries SlaBreached but has no handler"):
        durable_subscriber(
            NatsRouter(),
            specs.INCIDENT_ALERTS,
            {AlertFiring: recorder(handled), AlertResolved: recorder(handled)},
            service="incident-engine",
        )
    with pytest.raises(SubscriberError, match=r"evaluator_jobs .* never receives AlertFiring"):
        durable_subscriber(
            NatsRouter(),
            specs.EVALUATOR_JOBS,
            {m: recorder(handled) for m in carried_events(specs.EVALUATOR_JOBS)}
            | {AlertFiring: recorder(handled)},
            service="evaluator",
        )


def test_a_consumer_carries_the_event_types_of_its_filter_subjects() -> None:
    assert carried_events(specs.INCIDENT_ALERTS) == (AlertFiring, AlertResolved, SlaBreached)
    jobs = carried_events(specs.EVALUATOR_JOBS)
    assert RunStarted in jobs
    assert RunProgressed in jobs
    assert all(m.family is subjects.JOB_EVENT for m in jobs)
