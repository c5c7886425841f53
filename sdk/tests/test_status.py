"""What makes ``hms-ops status`` exit non-zero, and the line that says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hms_contracts import ServiceHeartbeat
from hms_ops.registry import is_stale
from hms_ops.status import InstanceStatus, problems
from hms_testing.samples import heartbeat


def row(service: str, state: str, leader: bool | None = None) -> InstanceStatus:
    return InstanceStatus(service=service, state=state, instance="i", leader=leader)


def beat(interval_s: float, age_s: float) -> tuple[ServiceHeartbeat, datetime]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return heartbeat("console", at=at, interval_s=interval_s), at + timedelta(seconds=age_s)


def test_every_service_with_a_healthy_instance_and_every_singleton_leading_is_ok() -> None:
    assert not problems([row("scheduler", "ok", leader=True), row("console", "ok")])


def test_a_missing_service_fails() -> None:
    assert problems([row("scheduler", "ok", True), row("console", "missing")]) == [
        "console: no instance in the registry"
    ]


def test_a_silent_instance_with_no_healthy_replacement_fails() -> None:
    assert problems([row("scheduler", "ok", True), row("console", "stale")])


def test_a_killed_instance_beside_its_healthy_replacement_is_shown_not_failed() -> None:
    assert not problems([row("console", "stale"), row("console", "ok")])


def test_an_instance_that_beats_unhealthy_fails_even_beside_a_healthy_one() -> None:
    assert problems([row("worker-pool", "ok"), row("worker-pool", "unhealthy")])


def test_a_singleton_with_healthy_instances_but_no_leader_fails_with_a_clear_line() -> None:
    rows = [row("evaluator", "ok", leader=False), row("evaluator", "ok", leader=False)]
    assert problems(rows) == [
        "evaluator: 2 healthy instance(s) but none holds the lease: "
        "no leader, so its decisions are not being made"
    ]


def test_a_singleton_led_by_one_of_its_instances_is_ok() -> None:
    assert not problems([row("evaluator", "ok", leader=False), row("evaluator", "ok", leader=True)])


def test_staleness_follows_each_heartbeats_own_interval() -> None:
    assert not is_stale(*beat(interval_s=20.0, age_s=25.0)), "a 20 s beat is not stale at 25 s"
    assert not is_stale(*beat(interval_s=20.0, age_s=59.0))
    assert is_stale(*beat(interval_s=20.0, age_s=61.0)), "stale after three of its periods"
    assert is_stale(*beat(interval_s=0.3, age_s=1.0))
