"""The incident-engine's decisions as pure functions, without I/O: what to do about an alert or
breach.
"""

from __future__ import annotations

SERVICE = "incident-engine"
