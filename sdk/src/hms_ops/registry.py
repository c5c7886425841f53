"""The service registry, reader side: which instances beat, and which stopped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from hms_contracts import ServiceHeartbeat
from hms_contracts.specs import SERVICE_REGISTRY
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError

log = logging.getLogger(__name__)


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
