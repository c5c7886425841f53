"""The scheduler's decisions as pure functions, without I/O: when each job runs (cron, time zone,
overlap, catch-up). ``now`` is always an argument."""

from __future__ import annotations

from .cron import jitter_for, slots_after
from .due import Decision, Outcome, Skipped, SkipReason, Slot, due, slot

SERVICE = "scheduler"

__all__ = [
    "SERVICE",
    "Decision",
    "Outcome",
    "SkipReason",
    "Skipped",
    "Slot",
    "due",
    "jitter_for",
    "slot",
    "slots_after",
]
