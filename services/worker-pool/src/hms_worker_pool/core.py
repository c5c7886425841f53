"""The worker-pool's decisions as pure functions, without I/O: how a work item's attempt ends:
completed, retried or dead-lettered.
"""

from __future__ import annotations

SERVICE = "worker-pool"
