"""What makes ``hms-ops status`` exit non-zero."""

from __future__ import annotations

from hms_ops.status import InstanceStatus, all_ok


def row(service: str, state: str) -> InstanceStatus:
    return InstanceStatus(service=service, state=state)


def test_every_service_with_a_healthy_instance_is_ok() -> None:
    assert all_ok([row("scheduler", "ok"), row("console", "ok")])


def test_a_missing_service_fails() -> None:
    assert not all_ok([row("scheduler", "ok"), row("console", "missing")])


def test_a_silent_instance_with_no_healthy_replacement_fails() -> None:
    assert not all_ok([row("scheduler", "ok"), row("console", "stale")])


def test_a_killed_instance_beside_its_healthy_replacement_is_shown_not_failed() -> None:
    assert all_ok([row("console", "stale"), row("console", "ok")])


def test_an_instance_that_beats_unhealthy_fails_even_beside_a_healthy_one() -> None:
    assert not all_ok([row("worker-pool", "ok"), row("worker-pool", "unhealthy")])
