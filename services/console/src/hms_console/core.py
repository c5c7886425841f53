"""The console's decisions as pure functions, without I/O: who may see and do what."""

from __future__ import annotations

SERVICE = "console"
