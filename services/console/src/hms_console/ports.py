"""The I/O the console depends on, as small protocols."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the time; tests move it by hand."""

    def now(self) -> datetime: ...
