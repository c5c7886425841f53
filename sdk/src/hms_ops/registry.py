"""The service registry, reading side: who is running, as their heartbeats say.

Reading lists the keys from the registry stream's state and fetches each with a direct get:
no consumer is created, so none is left behind, and the listing is one consistent answer from
the server (no watcher that may end before it has seen every key).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from hms_contracts import ServiceHeartbeat
from hms_contracts.specs import SERVICE_REGISTRY, STALE_AFTER_BEATS, kv_stream
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

_PREFIX = f"$KV.{SERVICE_REGISTRY.bucket}."
_REMOVED = {"DEL", "PURGE"}


def is_stale(beat: ServiceHeartbeat, now: datetime | None = None) -> bool:
    """A heartbeat older than three of its own periods means the instance stopped beating."""
    now = now or datetime.now(UTC)
    return now - beat.occurred_at > timedelta(seconds=STALE_AFTER_BEATS * beat.interval_s)


async def _last(js: JetStreamContext, subject: str, direct: bool) -> RawStreamMsg | None:
    try:
        return await js.get_msg(kv_stream(SERVICE_REGISTRY), subject=subject, direct=direct)
    except NotFoundError:  # lapsed between the listing and the get
        return None


async def read_registry(js: JetStreamContext) -> list[ServiceHeartbeat]:
    """Every instance in the registry (stale ones too), by service name, then start time."""
    info = await js.stream_info(kv_stream(SERVICE_REGISTRY), subjects_filter=_PREFIX + ">")
    subjects = sorted(info.state.subjects or {})
    direct = bool(info.config.allow_direct)
    msgs = await asyncio.gather(*(_last(js, subject, direct) for subject in subjects))
    beats: list[ServiceHeartbeat] = []
    for subject, msg in zip(subjects, msgs, strict=True):
        if msg is None or not msg.data or (msg.headers or {}).get("KV-Operation") in _REMOVED:
            continue
        try:
            beats.append(ServiceHeartbeat.model_validate_json(msg.data))
        except ValueError:
            log.warning("registry entry %s is not a heartbeat; ignored", subject[len(_PREFIX) :])
    return sorted(beats, key=lambda b: (b.service, b.started_at))
