"""The alert state machine, step by step with a hand-moved clock."""

from __future__ import annotations

from collections.abc import Sequence

from hms_evaluator.core.states import AlertState, fingerprint, step


def run(
    state: AlertState, seq: Sequence[tuple[float, bool | None]], for_s: float, keep: float = 0.0
) -> list[tuple[float, str | None, str]]:
    out: list[tuple[float, str | None, str]] = []
    for now, holds in seq:
        change = step(state, holds, 1.0, now, for_s=for_s, keep_firing_s=keep)
        out.append((now, change, state.phase))
    return out


def test_pending_for_the_for_duration_then_firing_then_resolved() -> None:
    state = AlertState()
    seq = [(0.0, True), (299.0, True), (300.0, True), (400.0, True), (401.0, False)]
    assert run(state, seq, 300.0) == [
        (0.0, None, "pending"),
        (299.0, None, "pending"),
        (300.0, "fired", "firing"),
        (400.0, None, "firing"),
        (401.0, "resolved", "inactive"),
    ]


def test_a_condition_that_stops_while_pending_starts_again_from_zero() -> None:
    state = AlertState()
    seq = [(0.0, True), (200.0, False), (250.0, True), (500.0, True), (550.0, True)]
    assert [c for _, c, _ in run(state, seq, 300.0)] == [None, None, None, None, "fired"]
    assert state.active_since == 250.0


def test_for_zero_fires_on_the_first_breach() -> None:
    assert run(AlertState(), [(5.0, True)], 0.0) == [(5.0, "fired", "firing")]


def test_keep_firing_for_rides_out_a_flap() -> None:
    state = AlertState()
    seq = [(0.0, True), (10.0, False), (50.0, True), (60.0, False), (109.0, False), (111.0, False)]
    assert [c for _, c, _ in run(state, seq, 0.0, keep=60.0)] == [
        "fired",
        None,
        None,
        None,
        None,
        "resolved",
    ]


def test_keep_state_changes_nothing() -> None:
    state = AlertState()
    run(state, [(0.0, True)], 300.0)
    assert run(state, [(400.0, None)], 300.0) == [(400.0, None, "pending")]
    assert run(state, [(401.0, True)], 300.0) == [(401.0, "fired", "firing")]


def test_the_fingerprint_is_the_rule_and_the_labels_in_any_order() -> None:
    a = fingerprint("ns", "rule", {"route": "/a", "env": "prod"})
    assert a == fingerprint("ns", "rule", {"env": "prod", "route": "/a"})
    assert a != fingerprint("ns", "rule", {"env": "prod", "route": "/b"})
    assert a != fingerprint("ns2", "rule", {"env": "prod", "route": "/a"})
    assert len(a) == 16
