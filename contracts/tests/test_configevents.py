"""Config changes are audit events: one per write, on the kind's subject, keyed by revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hms_contracts import ConfigChanged, decode, specs, topology
from pydantic import ValidationError

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def changed(**extra: Any) -> ConfigChanged:
    fields: dict[str, Any] = {
        "namespace": "usds_unemployment",
        "occurred_at": T0,
        "key": "usds_unemployment.alert.slow",
        "kind": "alert",
        "name": "slow",
        "action": "applied",
        "generation": 1,
        "revision": 5,
        "author": "hms-admin",
    }
    return ConfigChanged.create(**{**fields, **extra})


def test_a_change_is_published_on_its_namespace_and_kind() -> None:
    event = changed()
    assert event.subject() == "ops.config.usds_unemployment.alert"
    assert decode(event.subject(), event.model_dump_json()) == event


def test_each_write_has_its_own_id_and_a_retry_the_same_one() -> None:
    assert changed().event_id == changed().event_id
    assert changed(revision=6).event_id != changed().event_id
    # deleted and re-created: generation 1 again, but another revision
    assert changed(revision=9, generation=1).event_id != changed(generation=1).event_id


def test_a_key_that_names_another_object_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not match"):
        changed(name="fast")
    with pytest.raises(ValidationError, match="registry key"):
        changed(key="usds_unemployment.nokind.slow")


def test_every_services_config_kinds_are_known_kinds() -> None:
    with pytest.raises(ValidationError, match="config_kinds: secret not a config kind"):
        topology.ServiceSpec(name="x", singleton=False, config_kinds=("secret",))


def test_only_the_console_writes_config_on_behalf_of_people() -> None:
    writers = [svc.name for svc in topology.SERVICES if specs.CONFIG.bucket in svc.kv_writes]
    assert writers == ["console"]


READERS = [svc for svc in topology.SERVICES if specs.CONFIG.bucket not in svc.kv_writes]


@pytest.mark.parametrize("svc", READERS, ids=lambda svc: svc.name)
def test_a_service_may_read_only_the_config_kinds_it_follows_and_never_write_them(
    svc: topology.ServiceSpec,
) -> None:
    perms = topology.nats_permissions(svc)["publish"]["allow"]
    config = [p for p in perms if "hms_config" in p]
    kinds = sorted(svc.config_kinds)
    assert config == sorted(
        [
            *(f"$JS.API.CONSUMER.CREATE.KV_hms_config.*.$KV.hms_config.*.{k}.>" for k in kinds),
            *(f"$JS.API.DIRECT.GET.KV_hms_config.$KV.hms_config.*.{k}.>" for k in kinds),
            "$JS.API.STREAM.INFO.KV_hms_config",
            *(f"dlq.$KV.hms_config.*.{k}.>" for k in kinds),
        ]
    )
    assert not any(p.startswith("$KV.hms_config") for p in perms), "it never writes config"
