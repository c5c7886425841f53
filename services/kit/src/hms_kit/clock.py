"""The clock port every service's decisions read time from, and its two implementations.

Decisions take ``now`` as an argument (see each service's ``core``); the I/O around them asks a
:class:`Clock`. In production that is :class:`SystemClock`; tests hand-move a :class:`FakeClock`,
so a five-minute ``for`` window or a 05:00 deadline is tested in microseconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Tells the time (aware UTC datetimes) and waits."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock in UTC, the monotonic clock and asyncio's sleep."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to: ``advance(seconds)`` or ``set(when)``.

    ``sleep`` returns once the clock has been moved past its deadline, so a loop under test
    runs exactly as far as the test moves time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime (e.g. tzinfo=UTC)")
        self._mono = 0.0
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + max(seconds, 0.0)
        async with self._moved:
            await self._moved.wait_for(lambda: self._mono >= deadline)

    async def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake the sleepers whose deadline passed."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward (advance({seconds}))")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        async with self._moved:
            self._moved.notify_all()
        await asyncio.sleep(0)  # let the woken sleepers run

    async def set(self, when: datetime) -> None:
        """Move to ``when`` (not backwards)."""
        await self.advance((when - self._now).total_seconds())
