"""Every service user is refused what is not its own, and the server is left as it was.

Each attack below was once possible as a service user. It is replayed as every service in
the topology against a nats-server configured as ``hms-ops up`` configures it; the test
asserts the refusal and that no stream config, KV entry or consumer count changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hms_contracts import MetricSampleBatch, specs, subjects, topology
from hms_contracts.config import Job
from hms_evaluator.adapters import replay_metrics
from hms_kit import ConfigWatcher
from hms_kit.provision import stream_config
from nats.js import JetStreamContext
from nats.js import api as js_api

from .conftest import (
    CONFIG_SEED,
    VICTIM,
    Attacker,
    SecuredStack,
    connect_as,
    heartbeat,
    snapshot,
)

Attack = Callable[[Attacker], Awaitable[None]]


def _dlq(**changes: object) -> js_api.StreamConfig:
    return stream_config(specs.DLQ).evolve(**changes)


async def dlq_republishes_a_forged_incident(a: Attacker) -> None:
    forge = js_api.RePublish(src="dlq.>", dest="ops.incident.forged.>")
    await a.refused(a.js.update_stream(_dlq(republish=forge)), "add a republish rule to the DLQ")


async def dlq_sources_a_stream_it_may_not_read(a: Attacker) -> None:
    sources = [js_api.StreamSource(name=specs.INCIDENTS.name)]
    await a.refused(a.js.update_stream(_dlq(sources=sources)), "make the DLQ source INCIDENTS")


async def dlq_keeps_one_message_and_destroys_dead_letters(a: Attacker) -> None:
    await a.refused(a.js.update_stream(_dlq(max_msgs=1)), "set the DLQ's max_msgs to 1")
    await a.refused(a.js.purge_stream(specs.DLQ.name), "purge the DLQ")
    if not a.svc.replays_dead_letters:  # the console removes the one it replays, for a person
        await a.refused(a.js.delete_msg(specs.DLQ.name, 1), "delete a dead letter")
    await a.refused(a.js.delete_stream(specs.DLQ.name), "delete the DLQ")


async def dead_letters_of_subjects_it_does_not_consume(a: Attacker) -> None:
    await a.refused(a.js.publish("dlq.nobody.consumes.this", b"x"), "forge a dead letter")


async def every_other_singletons_lease_is_written(a: Attacker) -> None:
    leases = await a.js.key_value(specs.LEASES.bucket)
    for other in topology.SERVICES:
        if other.singleton and other.name != a.svc.name:
            key = specs.lease_key(other.name)
            await a.refused(leases.put(key, b"forged"), f"write {other.name}'s lease")
            await a.refused(leases.delete(key), f"delete {other.name}'s lease")
            await a.refused(leases.purge(key), f"purge {other.name}'s lease")
    if not a.svc.singleton:
        key = specs.lease_key(a.svc.name)
        await a.refused(leases.create(key, b"forged"), "take a lease it has no use for")


async def a_healthy_entry_is_forged_for_another_service(a: Attacker) -> None:
    registry = await a.js.key_value(specs.SERVICE_REGISTRY.bucket)
    for other in topology.SERVICE_NAMES:
        if other != a.svc.name:
            key = specs.registry_key(other, "forged")
            await a.refused(registry.put(key, heartbeat(other, "forged")), f"register {other}")


async def another_services_entry_is_deleted(a: Attacker) -> None:
    registry = await a.js.key_value(specs.SERVICE_REGISTRY.bucket)
    for other in topology.SERVICE_NAMES:
        if other != a.svc.name:
            key = specs.registry_key(other, VICTIM)
            await a.refused(registry.delete(key), f"delete {other}'s entry")
            await a.refused(registry.purge(key), f"purge {other}'s entry")


async def the_lease_buckets_ttl_is_raised_to_an_hour(a: Attacker) -> None:
    for bucket in specs.KV_BUCKETS:
        name = specs.kv_stream(bucket)
        info = await a.js.stream_info(name)
        longer = info.config.evolve(max_age=3600.0)
        await a.refused(a.js.update_stream(longer), f"change {name}'s TTL")
        await a.refused(a.js.purge_stream(name), f"purge {name}")


async def consumers_pile_up_on_the_buckets(a: Attacker) -> None:
    for bucket in specs.KV_BUCKETS:
        name = specs.kv_stream(bucket)
        ephemeral = js_api.ConsumerConfig(inactive_threshold=300.0)
        await a.refused(a.js.add_consumer(name, ephemeral), f"create a consumer on {name}")
        durable = js_api.ConsumerConfig(durable_name="pile", name="pile")
        await a.refused(a.js.add_consumer(name, durable), f"create a durable on {name}")
        kv = await a.js.key_value(bucket.bucket)
        await a.refused(kv.keys(), f"watch {name} (an ordered consumer)")


async def any_stream_is_edited(a: Attacker) -> None:
    for spec in specs.STREAMS:
        smaller = stream_config(spec).evolve(max_msgs=1)
        await a.refused(a.js.update_stream(smaller), f"update {spec.name}")
        if spec.name in a.svc.streams:  # create with another config must not update it either
            await a.refused(a.js.add_stream(smaller), f"re-create {spec.name} differently")


async def a_stream_it_may_not_read_is_read(a: Attacker) -> None:
    allowed = {*a.svc.streams, *a.svc.reads}
    for spec in specs.STREAMS:
        if spec.name not in allowed:
            ephemeral = js_api.ConsumerConfig(inactive_threshold=300.0)
            await a.refused(a.js.add_consumer(spec.name, ephemeral), f"consume {spec.name}")
            await a.refused(a.js.get_msg(spec.name, seq=1, direct=True), f"direct-get {spec.name}")
    copy = js_api.StreamConfig(
        name="STOLEN", sources=[js_api.StreamSource(name=specs.INCIDENTS.name)]
    )
    await a.refused(a.js.add_stream(copy), "create a stream that sources INCIDENTS")


async def config_is_written(a: Attacker) -> None:
    if specs.CONFIG.bucket in a.svc.kv_writes:
        return  # the console writes config for its authors (its role tests check who may)
    config = await a.js.key_value(specs.CONFIG.bucket)
    for key, body in CONFIG_SEED.items():  # its own kinds too: services only read config
        forged = body.replace(b"acme", b"forged")
        await a.refused(config.put(key, forged), f"overwrite {key}")
        await a.refused(config.create(key.replace("acme", "forged"), forged), "create config")
        await a.refused(config.delete(key), f"delete {key}")
        await a.refused(config.purge(key), f"purge {key}")


def _reader(kind: str, name: str = "thief") -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        name=name,
        filter_subject=specs.config_kind_subjects(kind),
        ack_policy=js_api.AckPolicy.NONE,
        inactive_threshold=300.0,
    )


async def config_of_kinds_it_does_not_follow_is_read(a: Attacker) -> None:
    stream = specs.kv_stream(specs.CONFIG)
    writer = specs.CONFIG.bucket in a.svc.kv_writes  # the console reads what authors write
    for key in CONFIG_SEED:
        kind = key.split(".")[1]
        if kind in a.svc.config_kinds or writer:
            continue
        subject = specs.config_subject(key)
        await a.refused(a.js.get_last_msg(stream, subject, direct=True), f"direct-get {key}")
        await a.refused(a.js.get_last_msg(stream, subject), f"get {key} through the API")
        await a.refused(a.js.add_consumer(stream, _reader(kind)), f"follow {kind} config")
    # the whole bucket, through every other form of consumer create
    everything = js_api.ConsumerConfig(name="thief", ack_policy=js_api.AckPolicy.NONE)
    await a.refused(a.js.add_consumer(stream, everything), "follow the whole config bucket")
    unnamed = js_api.ConsumerConfig(inactive_threshold=300.0, ack_policy=js_api.AckPolicy.NONE)
    await a.refused(a.js.add_consumer(stream, unnamed), "create an unnamed config consumer")
    durable = js_api.ConsumerConfig(durable_name="thief", ack_policy=js_api.AckPolicy.NONE)
    await a.refused(a.js.add_consumer(stream, durable), "create a durable config consumer")
    if a.svc.config_kinds:  # its own filter in the subject, another in the request
        own = a.svc.config_kinds[0]
        subject = f"$JS.API.CONSUMER.CREATE.{stream}.thief.{specs.config_kind_subjects(own)}"
        body = {"stream_name": stream, "config": everything.as_dict()}
        reply = await a.nc.request(subject, json.dumps(body).encode(), timeout=2)
        assert "error" in json.loads(reply.data), "a filter unlike the subject's was accepted"


async def config_is_delivered_into_another_stream(a: Attacker) -> None:
    for kind in a.svc.config_kinds:  # a consumer it may create, pushing where it may not
        pusher = _reader(kind, "pusher").evolve(
            deliver_subject="ops.incident.acme.opened", inactive_threshold=0.5
        )
        await a.attempt(a.js.add_consumer(specs.kv_stream(specs.CONFIG), pusher))
        # nothing listens on the deliver subject, so nothing is delivered into INCIDENTS; the
        # consumer lapses as inactive (the snapshot compares consumer counts too)
        await asyncio.sleep(1.5)


ATTACKS: dict[str, Attack] = {
    f.__name__: f
    for f in (
        dlq_republishes_a_forged_incident,
        dlq_sources_a_stream_it_may_not_read,
        dlq_keeps_one_message_and_destroys_dead_letters,
        dead_letters_of_subjects_it_does_not_consume,
        every_other_singletons_lease_is_written,
        a_healthy_entry_is_forged_for_another_service,
        another_services_entry_is_deleted,
        the_lease_buckets_ttl_is_raised_to_an_hour,
        consumers_pile_up_on_the_buckets,
        any_stream_is_edited,
        a_stream_it_may_not_read_is_read,
        config_is_written,
        config_of_kinds_it_does_not_follow_is_read,
        config_is_delivered_into_another_stream,
    )
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_service_user_is_refused_and_leaves_the_server_unchanged(
    attack: str, attacker: Attacker, admin_js: JetStreamContext
) -> None:
    before = await snapshot(admin_js)
    await ATTACKS[attack](attacker)
    after = await snapshot(admin_js)
    assert after == before, f"{attack} as {attacker.svc.name} changed the server"


def _instance(pattern: str) -> str:
    """A concrete subject matching ``pattern``."""
    return pattern.replace("*", "acme").replace(">", "x")


async def test_a_service_user_still_does_its_own_work(
    attacker: Attacker, admin_js: JetStreamContext
) -> None:
    svc = attacker.svc
    registry = await attacker.js.key_value(specs.SERVICE_REGISTRY.bucket)
    key = specs.registry_key(svc.name, "own-work")
    assert await attacker.attempt(registry.put(key, heartbeat(svc.name, "own-work"))) == "done"
    assert await attacker.attempt(registry.get(key)) == "done"
    assert await attacker.attempt(registry.purge(key)) == "done"
    if svc.singleton:
        leases = await attacker.js.key_value(specs.LEASES.bucket)
        lease = specs.lease_key(svc.name)
        assert await attacker.attempt(leases.get(lease)) == "done"
    for subject in svc.consumed_subjects():
        dead = "dlq." + _instance(subject)
        assert await attacker.attempt(attacker.js.publish(dead, b"poison")) == "done", dead
    for stream in (*svc.streams, *(s.name for s in specs.SHARED_STREAMS)):
        assert await attacker.attempt(attacker.js.stream_info(stream)) == "done", stream
    if svc.config_kinds:
        watcher = ConfigWatcher(attacker.nc, svc.config_kinds)
        await watcher.start()
        try:
            held = {o.kind for o in watcher.current.values()}
            assert held == set(svc.config_kinds), "it follows exactly its own kinds"
        finally:
            await watcher.stop()
            stream = specs.kv_stream(specs.CONFIG)  # its consumers would lapse only in 30 s
            for info in await admin_js.consumers_info(stream):
                await admin_js.delete_consumer(stream, info.name)
    assert attacker.violations == []


async def test_the_evaluator_rebuilds_windows_and_looks_into_work_queues_as_itself(
    secured_stack: SecuredStack, admin_js: JetStreamContext
) -> None:
    now = datetime.now(UTC)
    batch = MetricSampleBatch.create(
        namespace="acme",
        occurred_at=now,
        source="seeded",
        origin="push",
        samples=[{"name": "api.latency_p99", "value": 1.0, "observed_at": now}],
    )
    await admin_js.publish(batch.subject(), batch.model_dump_json().encode())
    job = Job.model_validate(
        {"namespace": "acme", "id": "waits", "schedule": "0 0 * * *", "queue": "waits_q"}
        | {"sla_minutes": 60, "command": ["true"]}
    )
    waiting = job.run_at(now, now)
    await admin_js.publish(waiting.subject(), waiting.model_dump_json().encode())
    evaluator = await connect_as(secured_stack, topology.service("evaluator"))
    try:
        read: list[object] = []

        async def handle(msgs: list[Any]) -> None:
            read.extend(msgs)

        replay = replay_metrics(
            evaluator.js,
            now - timedelta(minutes=5),
            handle,
            inbox_prefix=subjects.inbox_prefix("evaluator"),
        )
        assert await evaluator.attempt(replay) == "done"
        assert read, "the replay consumer read the batch back"
        peek = evaluator.js.get_msg(
            specs.JOB_RUNS.name, seq=1, subject=waiting.subject(), next=True
        )
        assert await evaluator.attempt(peek) == "done", "it reads the work queue, never takes"
        assert not evaluator.violations, evaluator.violations
    finally:
        await evaluator.nc.close()
