"""Reading a namespace's run events back from JOB_EVENTS, for worker-pool and scheduler tests."""

from __future__ import annotations

import json
from typing import Any

from hms_contracts import specs, subjects
from nats.js import JetStreamContext


async def run_events(js: JetStreamContext, ns: str) -> list[dict[str, Any]]:
    """Every run event of namespace ``ns`` so far, oldest first, each with its ``subject``."""
    sub = await js.pull_subscribe(subjects.JOB_EVENT.wildcard(ns), stream=specs.JOB_EVENTS.name)
    got: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.3)
            except TimeoutError:
                break
            got += [{"subject": m.subject, **json.loads(m.data)} for m in msgs]
    finally:
        await sub.unsubscribe()
    return got


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """The event types (``started``, ``completed`` ...) of ``events``, in order."""
    return [e["subject"].rsplit(".", 1)[-1] for e in events]
