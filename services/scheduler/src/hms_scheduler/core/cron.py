"""Jitter, and the schedule as instants from the contracts (``hms_contracts.config.schedule``:
the Debian cron convention across daylight-saving changes is described there)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from hms_contracts.config.schedule import slots_after, zone_of


def jitter_for(run_id: str, jitter: timedelta) -> timedelta:
    """A delay in ``[0, jitter]`` derived from the run id (millisecond steps), so every scheduler
    instance and every restart picks the same one for the same run."""
    steps = int(jitter.total_seconds() * 1000)
    if steps <= 0:
        return timedelta(0)
    digest = hashlib.sha256(run_id.encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (steps + 1))


__all__ = ["jitter_for", "slots_after", "zone_of"]
