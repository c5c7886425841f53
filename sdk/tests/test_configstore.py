"""The config registry: apply is idempotent and all or nothing; history and deletes are kept."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hms_contracts import ConfigChanged, specs
from hms_contracts.config import Alert, Metric, Playbook
from hms_kit import provision_shared
from hms_ops.configstore import ConfigStore, Stored, publish_changes
from hms_ops.errors import ConflictError, InvalidObject
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


async def test_a_write_over_a_version_it_did_not_read_is_a_conflict_and_rolls_back(
    store: ConfigStore,
) -> None:
    await store.apply([latency("ms")])
    meanwhile = ConfigStore(store.kv, author="someone-else")
    stale = await store._last(latency().key())
    await meanwhile.apply([latency("s")])
    with pytest.raises(ConflictError, match="changed by someone else"):
        await store._write(latency().key(), b"{}", stale[1])
    await store.apply([rule()])
    store_plan = store._last

    async def stale_plan(key: str) -> tuple[Stored | None, int]:  # read before the other write
        found = await store_plan(key)
        return (stale[0], stale[1]) if key == latency().key() else found

    store._last = stale_plan  # type: ignore[method-assign]
    play = Playbook(namespace=NS, name="rollback", steps=["notify oncall done"])  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        await store.apply([play, latency("h")])
    assert await store.get(NS, "playbook", "rollback") is None
    assert (await store.get(NS, "metric", "api.latency_p99")).object == latency("s")  # type: ignore[union-attr]


async def test_every_write_that_stands_is_audited_once_with_its_revision(
    js: JetStreamContext,
) -> None:
    kv = await js.create_key_value(KeyValueConfig(bucket="hms_config", history=16))
    events: list[ConfigChanged] = []

    async def record(changed: Sequence[ConfigChanged]) -> None:
        events.extend(changed)

    store = ConfigStore(kv, author="hms-admin", on_change=record)
    await store.apply([latency(), rule()])
    await store.apply([latency(), rule()])  # unchanged: nothing to audit
    await store.delete(NS, "alert", "slow")
    await store.apply([rule()])  # re-created: generation 1 again, a new revision
    assert [(e.key, e.action, e.generation, e.revision) for e in events] == [
        (f"{NS}.metric.api.latency_p99", "applied", 1, 1),
        (f"{NS}.alert.slow", "applied", 1, 2),
        (f"{NS}.alert.slow", "deleted", 1, 3),
        (f"{NS}.alert.slow", "applied", 1, 4),
    ]
    assert len({e.event_id for e in events}) == 4
    assert {e.author for e in events} == {"hms-admin"}


async def test_published_changes_land_in_the_audit_stream(js: JetStreamContext) -> None:
    await provision_shared(js)
    kv = await js.key_value(specs.CONFIG.bucket)
    store = ConfigStore(kv, author="hms-admin", on_change=publish_changes(js))
    await store.apply([latency(), rule()])
    msg = await js.get_last_msg(specs.CONFIG_CHANGES.name, f"ops.config.{NS}.alert")
    event = ConfigChanged.model_validate_json(msg.data or b"")
    assert (event.key, event.action, event.author) == (f"{NS}.alert.slow", "applied", "hms-admin")
    assert (msg.headers or {})["Nats-Msg-Id"] == event.event_id
