"""People's (and playbooks') hands on the work: a queue is paused while its key
``<ns>.queue.<queue>`` exists in the ``hms_job_control`` bucket, which every worker reads
(``hms-ops queues pause|resume`` writes the same key)."""

from __future__ import annotations

import json
from datetime import datetime

from hms_contracts import specs
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError


async def set_queue_paused(
    js: JetStreamContext, namespace: str, queue: str, paused: bool, who: str, at: datetime
) -> bool:
    """Pause ``queue`` (its key set, saying who and when) or resume it (the key gone); whether
    that changed anything."""
    kv = await js.key_value(specs.JOB_CONTROL.bucket)
    key = specs.queue_pause_key(namespace, queue)
    try:
        await kv.get(key)
        was = True
    except (KeyNotFoundError, KeyDeletedError):
        was = False
    if paused and not was:
        await kv.put(key, json.dumps({"paused_by": who, "at": at.isoformat()}).encode())
    elif was and not paused:
        await kv.delete(key)
    return was != paused
