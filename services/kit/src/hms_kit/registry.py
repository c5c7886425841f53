"""The service registry, writer side: heartbeats in a KV bucket whose TTL drops silent instances.

The reader (``read_registry``, ``is_stale``) is the SDK's: ``hms_ops.registry``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hms_contracts import ServiceHeartbeat
from hms_contracts.specs import SERVICE_REGISTRY
from nats.aio.client import Client

from .metrics import KitMetrics

log = logging.getLogger(__name__)


def registry_key(service: str, instance_id: str) -> str:
    return f"{service}.{instance_id}"


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
