"""Reading the service registry: every running instance, every time, and nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import UTC, datetime

from hms_contracts import ServiceHeartbeat, specs
from hms_contracts.topology import SERVICE_NAMES
from hms_kit import provision_shared
from hms_kit.registry import beat_forever, deregister
from hms_ops.registry import read_registry
from hms_testing import wait_until
from hms_testing.samples import heartbeat
from nats.aio.client import Client
from nats.js import JetStreamContext

REGISTRY = specs.kv_stream(specs.SERVICE_REGISTRY)


def beat_of(service: str, interval_s: float) -> ServiceHeartbeat:
    return heartbeat(service, at=datetime.now(UTC), interval_s=interval_s, instance_id="i1")


async def test_reading_the_registry_leaves_no_consumer_behind(
    nc: Client, js: JetStreamContext
) -> None:
    await provision_shared(js)
    task = asyncio.create_task(beat_forever(nc, lambda: beat_of("console", 0.2), 0.2))
    try:
        await wait_until(lambda: read_registry(js), timeout=5, message="an entry")
        for _ in range(5):
            assert [b.service for b in await read_registry(js)] == ["console"]
        assert (await js.stream_info(REGISTRY)).state.consumer_count == 0
    finally:
        task.cancel()


async def test_every_beating_service_is_read_every_time_while_entries_are_rewritten(
    nc: Client, js: JetStreamContext
) -> None:
    await provision_shared(js)
    tasks = [
        asyncio.create_task(beat_forever(nc, functools.partial(beat_of, name, 0.05), 0.05))
        for name in SERVICE_NAMES
    ]
    try:
        await wait_until(
            lambda: _services(js, set(SERVICE_NAMES)), timeout=5, message="every entry"
        )
        for _ in range(100):
            seen = {b.service for b in await read_registry(js)}
            assert seen == set(SERVICE_NAMES), f"read only {sorted(seen)}"
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_an_entry_carries_a_ttl_of_ten_heartbeat_intervals_and_lapses_with_it(
    nc: Client, js: JetStreamContext
) -> None:
    await provision_shared(js)
    slow = asyncio.create_task(beat_forever(nc, lambda: beat_of("scheduler", 20.0), 20.0))
    fast = asyncio.create_task(beat_forever(nc, lambda: beat_of("console", 0.1), 0.1))
    try:
        await wait_until(
            lambda: _services(js, {"scheduler", "console"}), timeout=5, message="both entries"
        )
        slow_entry = await js.get_last_msg(REGISTRY, "$KV.hms_services.scheduler.i1")
        assert (slow_entry.headers or {}).get("Nats-TTL") == "200", "20 s beats live 200 s"
        fast.cancel()
        await wait_until(
            lambda: _services(js, {"scheduler"}), timeout=5, message="the silent entry to lapse"
        )
    finally:
        slow.cancel()
        fast.cancel()


async def test_a_deregistered_instance_is_gone_at_once(nc: Client, js: JetStreamContext) -> None:
    await provision_shared(js)
    task = asyncio.create_task(beat_forever(nc, lambda: beat_of("console", 0.2), 0.2))
    await wait_until(lambda: read_registry(js), timeout=5, message="an entry")
    task.cancel()
    await deregister(nc, "console", "i1", 0.2)
    assert await read_registry(js) == []


async def _services(js: JetStreamContext, want: set[str]) -> bool:
    return {b.service for b in await read_registry(js)} == want
