"""The clock port: the system clock tells real time, the fake one moves only when told."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hms_kit import Clock, FakeClock, SystemClock


def test_the_system_clock_tells_aware_utc_time() -> None:
    clock: Clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=1)


async def test_a_fake_clock_stands_still_until_advanced() -> None:
    start = datetime(2026, 11, 25, 4, 59, tzinfo=UTC)
    clock = FakeClock(start)
    await asyncio.sleep(0.01)
    assert clock.now() == start
    await clock.advance(90)
    assert clock.now() == start + timedelta(seconds=90)
    assert clock.monotonic() == 90


async def test_a_sleeper_wakes_only_when_the_clock_passes_its_deadline() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep(300))
    await asyncio.sleep(0)  # the sleep starts now: its deadline is 300 s from here
    await clock.advance(299)
    assert not sleeper.done()
    await clock.advance(1)
    await asyncio.wait_for(sleeper, timeout=1)


async def test_a_fake_clock_never_moves_backwards() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="only moves forward"):
        await clock.set(clock.now() - timedelta(seconds=1))


def test_a_fake_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2026, 1, 1))
