"""The service registry: heartbeats kept in a KV bucket whose TTL drops silent instances."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hms_contracts.events import ServiceHeartbeat
from hms_contracts.specs import SERVICE_REGISTRY
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError

from .metrics import KitMetrics

log = logging.getLogger(__name__)


def registry_key(service: str, instance_id: str) -> str:
    return f"{service}.{instance_id}"


async def read_registry(js: JetStreamContext) -> list[ServiceHeartbeat]:
    """Every instance that has beaten within the bucket's TTL, oldest service name first."""
    kv = await js.key_value(SERVICE_REGISTRY.bucket)
    try:
        keys = await kv.keys()
    except NoKeysError:
        return []
    beats: list[ServiceHeartbeat] = []
    for key in keys:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if not entry.value:
            continue
        try:
            beats.append(ServiceHeartbeat.model_validate_json(entry.value))
        except ValueError:
            log.warning("registry entry %s is not a heartbeat; ignored", key)
    return sorted(beats, key=lambda b: (b.service, b.started_at))


def is_stale(beat: ServiceHeartbeat, interval_s: float, now: datetime | None = None) -> bool:
    """A heartbeat older than three periods means the instance stopped beating."""
    now = now or datetime.now(UTC)
    return now - beat.occurred_at > timedelta(seconds=3 * interval_s)


async def beat_forever(
    nc: Client,
    beat: Callable[[], ServiceHeartbeat],
    interval_s: float,
    metrics: KitMetrics | None = None,
) -> None:
    """Announce the instance on its heartbeat subject and in the registry, every period."""
    kv = await nc.jetstream().key_value(SERVICE_REGISTRY.bucket)
    while True:
        try:
            event = beat()
            body = event.model_dump_json().encode()
            await nc.publish(event.subject(), body)
            await kv.put(registry_key(event.service, event.instance_id), body)
            if metrics is not None:
                metrics.heartbeats.inc()
        except Exception as exc:  # the bus is away: the registry's TTL tells the world
            log.warning("heartbeat failed: %s", exc)
        await asyncio.sleep(interval_s)
