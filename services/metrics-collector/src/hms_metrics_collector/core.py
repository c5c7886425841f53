"""The metrics-collector's decisions as pure functions, without I/O: what was measured, batched for
the bus.
"""

from __future__ import annotations

SERVICE = "metrics-collector"
