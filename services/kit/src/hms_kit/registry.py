"""The service registry, writing side: each instance's latest heartbeat in a KV bucket.

Every entry carries its own TTL (``Nats-TTL``), a multiple of the instance's heartbeat interval,
and every heartbeat says its interval, so staleness (``hms_ops.registry.is_stale``) and lapse
follow the configured period, not a fixed bucket TTL. The reading side is the SDK's
(``hms-ops status``), so that reading needs neither the kit nor a consumer.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from hms_contracts import ServiceHeartbeat
from hms_contracts.specs import LAPSE_AFTER_BEATS, SERVICE_REGISTRY, registry_key
from nats.aio.client import Client

from .health import Degradations
from .metrics import KitMetrics

log = logging.getLogger(__name__)

__all__ = ["beat_forever", "deregister", "lapse_s", "registry_key"]

_PREFIX = f"$KV.{SERVICE_REGISTRY.bucket}."
#: the part of a service that reports JetStream writes failing
JETSTREAM = "jetstream"


def lapse_s(interval_s: float) -> int:
    """Seconds a registry entry outlives its last heartbeat (``Nats-TTL`` is whole seconds)."""
    return max(1, math.ceil(LAPSE_AFTER_BEATS * interval_s))


async def beat_forever(
    nc: Client,
    beat: Callable[[], ServiceHeartbeat],
    interval_s: float,
    metrics: KitMetrics | None = None,
    degradations: Degradations | None = None,
) -> None:
    """Announce the instance on its heartbeat subject and in the registry, every period.

    The registry write doubles as the service's JetStream probe: while it fails on a connected
    client (a full disk, a wedged stream), the service is degraded with the reason.
    """
    js = nc.jetstream()
    while True:
        try:
            event = beat()
            body = event.model_dump_json().encode()
            await nc.publish(event.subject(), body)
            key = registry_key(event.service, event.instance_id)
            # a lost ack (the server restarting) holds the next beat back one period, no more
            await js.publish(
                _PREFIX + key, body, msg_ttl=lapse_s(event.interval_s), timeout=max(interval_s, 1)
            )
            if metrics is not None:
                metrics.heartbeats.inc()
            if degradations is not None:
                degradations.clear(JETSTREAM)
        except Exception as exc:  # the bus is away: the entry's TTL tells the world
            log.warning("heartbeat failed: %s", exc)
            if degradations is not None and nc.is_connected:
                what = str(exc) or type(exc).__name__
                degradations.report(JETSTREAM, f"cannot write to JetStream: {what}", ready=False)
        await asyncio.sleep(interval_s)


async def deregister(nc: Client, service: str, instance_id: str, interval_s: float) -> None:
    """Remove the instance's entry at once; the purge marker itself lapses like an entry."""
    kv = await nc.jetstream().key_value(SERVICE_REGISTRY.bucket)
    await kv.purge(registry_key(service, instance_id), msg_ttl=lapse_s(interval_s))
