"""A job's schedule as instants: the cron library read in the job's time zone, in UTC.

Shared by the scheduler (which fires them) and the CLI (``hms-ops jobs next``); it needs the
``cron`` extra (``hms-contracts[cron]``, which brings ``cronsim``).

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

from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from itertools import islice

from .jobs import Job


def zone_of(job: Job) -> tzinfo:
    """The job's time zone (the library special-cases ``datetime.UTC``)."""
    return UTC if job.timezone == "UTC" else job.tz


def slots_after(job: Job, after: datetime) -> Iterator[datetime]:
    """The job's schedule slots strictly after ``after``, as aware UTC datetimes, in order."""
    if after.utcoffset() is None:
        raise ValueError(f"slots_after: {after!r} must be timezone-aware")
    from cronsim import CronSim  # the cron extra: contracts alone depend on pydantic only

    after = after.astimezone(UTC)
    for local in CronSim(job.schedule, after.astimezone(zone_of(job))):
        at = local.astimezone(UTC)
        if at > after:
            yield at


def next_fires(job: Job, after: datetime, count: int = 1) -> list[datetime]:
    """The job's next ``count`` slots strictly after ``after`` (UTC)."""
    return list(islice(slots_after(job, after), count))
