"""Provisioning creates what is missing, leaves what matches, and refuses silent drift."""

from __future__ import annotations

import pytest
from hms_contracts import specs
from hms_kit import DriftError, provision
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig


async def server_configs(
    js: JetStreamContext,
) -> tuple[dict[str, StreamConfig], dict[str, ConsumerConfig]]:
    streams = {s.name: (await js.stream_info(s.name)).config for s in specs.STREAMS}
    consumers = {
        c.durable: (await js.consumer_info(c.stream, c.durable)).config for c in specs.CONSUMERS
    }
    return streams, consumers


async def test_provisioning_twice_changes_nothing(js: JetStreamContext) -> None:
    first = await provision(
        js, streams=specs.STREAMS, consumers=specs.CONSUMERS, buckets=specs.KV_BUCKETS
    )
    before = await server_configs(js)
    second = await provision(
        js, streams=specs.STREAMS, consumers=specs.CONSUMERS, buckets=specs.KV_BUCKETS
    )
    assert second.keys() == first.keys()
    assert len(second) == len(specs.STREAMS) + len(specs.CONSUMERS) + len(specs.KV_BUCKETS)
    assert set(second.values()) == {"unchanged"}
    assert await server_configs(js) == before


async def test_stream_drift_names_the_field_and_both_values_until_migrated(
    js: JetStreamContext,
) -> None:
    await provision(js, streams=[specs.ALERTS])
    config = (await js.stream_info(specs.ALERTS.name)).config
    config.max_age = 3600.0
    await js.update_stream(config)

    with pytest.raises(DriftError) as drift:
        await provision(js, streams=[specs.ALERTS])
    message = str(drift.value)
    assert "stream ALERTS: max_age is 3600.0 on the server" in message
    assert f"the spec says {specs.ALERTS.max_age_s!r}" in message

    assert await provision(js, streams=[specs.ALERTS], migrate=True) == {"stream:ALERTS": "updated"}
    assert (await js.stream_info(specs.ALERTS.name)).config.max_age == specs.ALERTS.max_age_s
    assert await provision(js, streams=[specs.ALERTS]) == {"stream:ALERTS": "unchanged"}


async def test_consumer_drift_names_the_field_and_both_values_until_migrated(
    js: JetStreamContext,
) -> None:
    spec = specs.INCIDENT_ALERTS
    await provision(js, streams=[specs.ALERTS], consumers=[spec])
    config = (await js.consumer_info(spec.stream, spec.durable)).config
    config.max_deliver = spec.max_deliver + 4
    await js.add_consumer(spec.stream, config)

    with pytest.raises(DriftError) as drift:
        await provision(js, consumers=[spec])
    assert (
        f"consumer ALERTS/{spec.durable}: max_deliver is {spec.max_deliver + 4} on the server, "
        f"the spec says {spec.max_deliver}"
    ) in str(drift.value)

    key = f"consumer:ALERTS/{spec.durable}"
    assert await provision(js, consumers=[spec], migrate=True) == {key: "updated"}
    assert (await js.consumer_info(spec.stream, spec.durable)).config.max_deliver == 5
    assert await provision(js, consumers=[spec]) == {key: "unchanged"}


async def test_bucket_drift_names_the_field_and_both_values(js: JetStreamContext) -> None:
    await provision(js, buckets=[specs.LEASES])
    changed = specs.LEASES.model_copy(update={"ttl_s": 30.0})
    with pytest.raises(DriftError) as err:
        await provision(js, buckets=[changed])
    assert "bucket hms_leases: ttl is 10.0 on the server, the spec says 30.0" in str(err.value)
