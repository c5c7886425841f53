"""Re-exports the schedule as instants (``hms_contracts.config.schedule``), and jitter.

A job's schedule as instants: the cron library read in the job's time zone, in UTC.

``cronsim`` follows the Debian cron convention across daylight-saving changes, which is the one
we promise: a fixed-time job (minute and hour both given, e.g. ``30 2 * * *``) runs once in a
repeated hour and, when its time is skipped, once as soon as the clock is past the gap (03:00);
an interval-style job (``*/15 * * * *``, ``0 * * * *``: minute or hour a wildcard) follows real
time, so it runs in both passes of a repeated hour and not at all in a skipped one.

For a fixed-time job the library computes on wall-clock time, so read from an instant inside
a repeated hour it can name the first pass, which is before that instant; such slots are
dropped here, which is what keeps every slot strictly after the watermark.
"""

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
