"""The console's decisions as pure functions, without I/O: who may see and do what, how a
figure reads in plain English, and the SVG the pages draw."""

from __future__ import annotations

SERVICE = "console"
