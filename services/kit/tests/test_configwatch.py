"""A service follows its config kinds: a snapshot at startup, then every change within a
second, and an entry it cannot read is reported while the last good version is kept."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import pytest
from hms_contracts import specs
from hms_contracts.config import ConfigEntry, Metric
from hms_kit import KitError, Service, ServiceSettings, provision_shared
from hms_ops.configstore import ConfigStore
from hms_testing import NatsHandle, running, wait_until
from nats.js import JetStreamContext

NS = "usds_unemployment"
KEY = f"{NS}.metric.api.latency_p99"


def latency(unit: str) -> Metric:
    return Metric(namespace=NS, name="api.latency_p99", unit=unit)


@pytest.fixture
async def store(js: JetStreamContext) -> ConfigStore:
    await provision_shared(js)
    return ConfigStore(await js.key_value(specs.CONFIG.bucket), author="hms-admin")


@pytest.fixture
async def collector(nats_server: NatsHandle, store: ConfigStore) -> AsyncIterator[Service]:
    await store.apply([latency("ms")])
    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=60)
    async with running(Service("metrics-collector", settings, version="t")) as service:
        yield service


def healthz(service: Service) -> dict[str, object]:
    with urllib.request.urlopen(service.health.url + "/healthz", timeout=2) as answer:
        body: dict[str, object] = json.loads(answer.read())
        return body


async def test_a_service_starts_with_the_snapshot_and_sees_changes_within_a_second(
    collector: Service, store: ConfigStore
) -> None:
    assert collector.config.objects("metric") == [latency("ms")]
    await store.apply([latency("s")])
    await wait_until(
        lambda: collector.config.get("metric", NS, "api.latency_p99") == latency("s"),
        timeout=1.0,
        message="the change",
    )
    other = Metric(namespace="acme", name="queue.depth")
    await store.apply([other])
    await wait_until(lambda: len(collector.config.objects("metric")) == 2, timeout=1.0)
    await store.delete(NS, "metric", "api.latency_p99")
    await wait_until(
        lambda: collector.config.objects("metric") == [other], timeout=1.0, message="the deletion"
    )


async def test_an_unreadable_entry_is_reported_and_the_last_good_version_kept(
    collector: Service, store: ConfigStore, js: JetStreamContext
) -> None:
    kv = store.kv
    bad = ConfigEntry.model_validate(
        {
            "kind": "metric",
            "object": {"namespace": NS, "name": "api.latency_p99", "unit": "m s"},
            "generation": 2,
            "author": "hms-admin",
            "written_at": "2025-01-01T00:00:00Z",
        }
    )
    await kv.put(KEY, bad.model_dump_json().encode())
    await kv.put(f"{NS}.metric.garbage", b"not json")
    await wait_until(lambda: len(collector.config.rejected) == 2, timeout=1.0)
    assert collector.config.get("metric", NS, "api.latency_p99") == latency("ms")
    assert "unit" in collector.config.rejected[KEY]

    health = await asyncio.to_thread(healthz, collector)
    assert health["status"] == "degraded"
    assert "2 config entries unreadable" in str(health["degraded"])
    assert collector.heartbeat().health == "degraded"
    metrics = collector.metrics
    assert metrics.registry.get_sample_value("hms_config_rejected_total", {"kind": "metric"}) == 2
    dead = await js.get_last_msg(specs.DLQ.name, f"dlq.$KV.hms_config.{KEY}")
    assert "unit" in (dead.headers or {})["Hms-Dlq-Reason"]

    await store.apply([latency("s")])  # a good version again
    await kv.delete(f"{NS}.metric.garbage")
    await wait_until(lambda: not collector.degradations, timeout=1.0, message="recovery")
    assert collector.config.get("metric", NS, "api.latency_p99") == latency("s")
    assert (await asyncio.to_thread(healthz, collector))["status"] == "ok"


def test_a_service_may_not_follow_kinds_its_topology_entry_does_not_allow() -> None:
    settings = ServiceSettings(nats_url="nats://127.0.0.1:1")
    with pytest.raises(KitError, match="may not follow config kind"):
        Service("metrics-collector", settings, version="t", config_kinds=("playbook",))
