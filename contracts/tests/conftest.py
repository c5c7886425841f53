"""Fixtures: one valid instance of every catalogued event (from ``hms_testing.samples``)."""

from __future__ import annotations

import pytest
from hms_contracts.bus import BusEvent
from hms_testing.samples import all_events


@pytest.fixture
def samples() -> dict[type[BusEvent], BusEvent]:
    """One valid instance per CATALOGUE model, by model."""
    return {type(e): e for e in all_events()}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes ``event`` once per catalogued event."""
    if "event" in metafunc.fixturenames:
        samples = all_events()
        metafunc.parametrize("event", samples, ids=[type(e).__name__ for e in samples])
