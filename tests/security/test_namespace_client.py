"""A namespace client is refused everything of another namespace and of the services, and the
server is left as it was; its own work still goes through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from hms_contracts import specs, subjects, topology
from hms_ops.state import StatePaths, read_namespace_client
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KeyValue

from .conftest import CLIENT_DURABLE, CLIENT_NS, Attacker, SecuredStack, snapshot

VICTIM_NS = "acme"  # the seeded namespace
KV_STREAM = f"KV_{topology.CONFIG_BUCKET}"

Attack = Callable[[Attacker], Awaitable[None]]


def config_kv(js: JetStreamContext) -> KeyValue:
    """The config bucket as a namespace client binds it (no stream info: it may not ask)."""
    bucket = topology.CONFIG_BUCKET
    return KeyValue(name=bucket, stream=KV_STREAM, pre=f"$KV.{bucket}.", js=js, direct=True)


@pytest.fixture
async def client(secured_stack: SecuredStack) -> AsyncIterator[Attacker]:
    cred = read_namespace_client(secured_stack.paths, CLIENT_NS)
    assert cred is not None
    who = topology.ServiceSpec(name="namespace-client", singleton=False)
    attacker = Attacker(who, nc=None)  # type: ignore[arg-type]
    attacker.nc = await nats.connect(
        secured_stack.url,
        user=cred["user"],
        password=cred["password"],
        inbox_prefix=subjects.namespace_inbox_prefix(CLIENT_NS),
        error_cb=attacker.on_error,
        max_reconnect_attempts=0,
        connect_timeout=2,
    )
    try:
        yield attacker
    finally:
        await attacker.nc.close()


async def another_namespaces_subjects_are_forged(a: Attacker) -> None:
    for subject in (
        f"ops.metric.{VICTIM_NS}.x",
        f"ops.event.{VICTIM_NS}.x",
        f"ops.incident.{VICTIM_NS}.opened",
        f"ops.alert.{CLIENT_NS}.firing",  # its own alerts are the evaluator's to raise
        f"sla.breach.{CLIENT_NS}",
        f"incident.closed.{CLIENT_NS}",
        subjects.heartbeat("console"),
    ):
        await a.refused(a.js.publish(subject, b"{}"), f"publish {subject}")


async def another_namespaces_metrics_are_queried(a: Attacker) -> None:
    subject = subjects.QUERY_METRICS.subject(VICTIM_NS)
    await a.refused(a.nc.request(subject, b'{"series": "x"}', timeout=2), f"query {subject}")
    assert any(subject in v for v in a.violations), "the server refused it (not: nobody answered)"


async def another_namespaces_config_is_read_or_written(a: Attacker) -> None:
    kv = config_kv(a.js)
    key = f"{VICTIM_NS}.metric.api.latency_p99"
    await a.refused(kv.get(key), f"read {key}")
    await a.refused(kv.put(key, b"{}"), f"write {key}")
    await a.refused(kv.delete(key), f"delete {key}")
    await a.refused(kv.watch(f"{VICTIM_NS}.>"), "watch another namespace's keys")
    await a.refused(kv.watch(">"), "watch the whole bucket")


async def streams_are_listed_or_inspected(a: Attacker) -> None:
    await a.refused(a.js.streams_info(), "list the streams")
    buckets = [specs.kv_stream(b) for b in specs.KV_BUCKETS]
    for name in (*(s.name for s in specs.STREAMS), *buckets):
        await a.refused(a.js.stream_info(name, subjects_filter=">"), f"list {name}'s subjects")
        await a.refused(a.js.get_msg(name, seq=1, direct=True), f"direct-get from {name}")
    await a.refused(a.js.stream_info(KV_STREAM, subjects_filter=">"), "list every config key")


async def streams_are_consumed_or_changed(a: Attacker) -> None:
    for spec in specs.STREAMS:
        ephemeral = js_api.ConsumerConfig(inactive_threshold=300.0)
        await a.refused(a.js.add_consumer(spec.name, ephemeral), f"consume {spec.name}")
        await a.refused(a.js.purge_stream(spec.name), f"purge {spec.name}")
        await a.refused(a.js.delete_stream(spec.name), f"delete {spec.name}")


async def durables_are_hijacked(a: Attacker) -> None:
    # a service's durable, and another namespace's, re-pointed at the client's own filter
    own = topology.durable_filter(CLIENT_NS, "breaches")
    for stream, name in (
        (specs.ALERTS.name, specs.INCIDENT_ALERTS.durable),
        (specs.ALERTS.name, f"{VICTIM_NS}-{CLIENT_DURABLE}-breaches"),
    ):
        config = js_api.ConsumerConfig(name=name, durable_name=name, filter_subject=own)
        await a.refused(a.js.add_consumer(stream, config), f"take over consumer {name}")
    victim = topology.durable_filter(VICTIM_NS, "incidents")
    _, mine = topology.durable_consumers(CLIENT_NS, CLIENT_DURABLE)["incidents"]
    config = js_api.ConsumerConfig(name=mine, durable_name=mine, filter_subject=victim)
    await a.refused(a.js.add_consumer(specs.INCIDENTS.name, config), "aim its durable at acme")


async def service_buckets_are_written(a: Attacker) -> None:
    for bucket in specs.KV_BUCKETS:
        subject = f"$KV.{bucket.bucket}.console.forged"
        await a.refused(a.js.publish(subject, b"{}"), f"write {bucket.bucket}")


ATTACKS: dict[str, Attack] = {
    f.__name__: f
    for f in (
        another_namespaces_subjects_are_forged,
        another_namespaces_metrics_are_queried,
        another_namespaces_config_is_read_or_written,
        streams_are_listed_or_inspected,
        streams_are_consumed_or_changed,
        durables_are_hijacked,
        service_buckets_are_written,
    )
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_namespace_client_is_refused_and_leaves_the_server_unchanged(
    attack: str, client: Attacker, admin_js: JetStreamContext
) -> None:
    before = await snapshot(admin_js)
    await ATTACKS[attack](client)
    after = await snapshot(admin_js)
    assert after == before, f"{attack} as a namespace client changed the server"


async def test_a_namespace_client_still_does_its_own_work(client: Attacker) -> None:
    js = client.js
    kv = config_kv(js)
    key = f"{CLIENT_NS}.metric.own_work"
    assert await client.attempt(kv.put(key, b"{}")) == "done"
    assert await client.attempt(kv.get(key)) == "done"
    assert await client.attempt(js.publish(f"ops.metric.{CLIENT_NS}.sdk", b"{}")) == "done"
    assert await client.attempt(js.publish(f"ops.event.{CLIENT_NS}.deploy", b"{}")) == "done"
    # its own metrics may be queried (no collector runs here: nobody answers, nothing refused)
    own_query = subjects.QUERY_METRICS.subject(CLIENT_NS)
    await client.attempt(client.nc.request(own_query, b'{"series": "x"}', timeout=1))
    stream, name = topology.durable_consumers(CLIENT_NS, CLIENT_DURABLE)["incidents"]
    config = js_api.ConsumerConfig(
        name=name, durable_name=name, filter_subject=topology.durable_filter(CLIENT_NS, "incidents")
    )
    assert await client.attempt(js.add_consumer(stream, config)) == "done"
    assert client.violations == []


def test_the_stack_keeps_the_namespace_credential_private(secured_stack: SecuredStack) -> None:
    path = StatePaths(secured_stack.paths.root).namespace_file(CLIENT_NS)
    assert path.stat().st_mode & 0o777 == 0o600
