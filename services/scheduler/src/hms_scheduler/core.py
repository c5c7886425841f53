"""The scheduler's decisions as pure functions, without I/O: when each job runs (cron, time zone,
overlap, catch-up).
"""

from __future__ import annotations

SERVICE = "scheduler"
