"""The config registry: apply is idempotent and all or nothing; history and deletes are kept."""

from __future__ import annotations

import pytest
from hms_contracts.config import Alert, Metric, Playbook
from hms_ops.configstore import ConfigStore
from hms_ops.errors import InvalidObject
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig

NS = "usds_unemployment"


@pytest.fixture
async def store(js: JetStreamContext) -> ConfigStore:
    kv = await js.create_key_value(KeyValueConfig(bucket="hms_config", history=16))
    return ConfigStore(kv, author="ns-usds_unemployment")


def latency(unit: str = "ms") -> Metric:
    return Metric(namespace=NS, name="api.latency_p99", unit=unit, source="push")


def rule() -> Alert:
    return Alert(namespace=NS, name="slow", metric="api.latency_p99", condition="> 1000")  # type: ignore[arg-type]


async def test_applying_the_same_objects_twice_writes_nothing_the_second_time(
    store: ConfigStore,
) -> None:
    first = await store.apply([latency(), rule()])
    assert [c.action for c in first] == ["created", "created"]
    revision = (await store.get(NS, "metric", "api.latency_p99")).revision  # type: ignore[union-attr]
    again = await store.apply([latency(), rule()])
    assert [c.action for c in again] == ["unchanged", "unchanged"]
    assert (await store.get(NS, "metric", "api.latency_p99")).revision == revision  # type: ignore[union-attr]


async def test_a_change_bumps_the_generation_and_history_keeps_every_version(
    store: ConfigStore,
) -> None:
    await store.apply([latency("ms")])
    [change] = await store.apply([latency("s")])
    assert (change.action, change.generation) == ("updated", 2)
    history = await store.history(NS, "metric", "api.latency_p99")
    assert [h.entry.object["unit"] for h in history] == ["ms", "s"]
    assert {h.entry.author for h in history} == {"ns-usds_unemployment"}
    current = await store.get(NS, "metric", "api.latency_p99")
    assert current is not None
    assert current.object == latency("s")


async def test_a_failed_write_rolls_back_the_ones_before_it(js: JetStreamContext) -> None:
    # a bucket whose values are capped: the second, large object cannot be written
    kv = await js.create_key_value(KeyValueConfig(bucket="small", history=4, max_value_size=600))
    store = ConfigStore(kv, author="ns-usds_unemployment")
    await store.apply([latency("ms")])
    play = Playbook(namespace=NS, name="rollback", steps=["notify oncall " + "x" * 700])  # type: ignore[arg-type]
    with pytest.raises(Exception, match="size"):
        await store.apply([latency("s"), rule(), play])
    kept = await store.get(NS, "metric", "api.latency_p99")
    assert kept is not None
    assert kept.object == latency("ms")
    assert await store.get(NS, "alert", "slow") is None
    assert await store.get(NS, "playbook", "rollback") is None


async def test_the_same_object_twice_in_one_apply_is_refused(store: ConfigStore) -> None:
    with pytest.raises(InvalidObject, match="more than once"):
        await store.apply([latency("ms"), latency("s")])
    assert await store.objects(NS) == []


async def test_delete_removes_the_current_version_and_list_follows(store: ConfigStore) -> None:
    await store.apply([latency(), rule()])
    assert [s.key for s in await store.objects(NS, "alert")] == [f"{NS}.alert.slow"]
    assert (await store.delete(NS, "alert", "slow")).action == "deleted"
    assert (await store.delete(NS, "alert", "slow")).action == "unchanged"
    assert [s.key for s in await store.objects(NS)] == [f"{NS}.metric.api.latency_p99"]
