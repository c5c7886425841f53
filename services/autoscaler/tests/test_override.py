"""A playbook's scale request as a floor, with time as an argument: the requested count within
the policy's bounds (which win, and say so), normal scaling above it, and nothing left of it once
it lapses on the clock; kept across a restart in the state directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hms_autoscaler.core import BACKLOG, Override, Reading, Scaler, floor_of
from hms_autoscaler.overrides import Overrides
from hms_contracts.config import ScalePolicy
from hms_kit import FakeClock

T0 = 1_800_000_000.0  # wall-clock seconds: a request outlives a restart


def policy(**fields: Any) -> ScalePolicy:
    base: dict[str, Any] = {"namespace": "ops", "name": "pool", "min": 0, "max": 5}
    base |= {"idle_to_zero_after": "30s", "scale_down": {"stabilization": "0s"}}
    return ScalePolicy.model_validate(base | fields)


def request(replicas: int, *, at: float = T0, for_s: float = 60.0, event: str = "e1") -> Override:
    return Override(
        namespace="ops",
        pool="pool",
        replicas=replicas,
        incident_id="inc-7",
        playbook="gateway-5xx",
        step_index=2,
        event_id=event,
        requested_at=at,
        until=at + for_s,
    )


def idle() -> Reading:
    return Reading(BACKLOG, 0.0, 10.0)


def test_a_request_within_min_and_max_is_the_floor_until_it_lapses() -> None:
    p = policy()
    floor = floor_of(request(3), p, T0 + 59.9)
    assert floor is not None
    assert floor.workers == 3
    assert "playbook gateway-5xx (step 2) of incident inc-7 requested 3" in floor.reason
    assert "clamped" not in floor.reason
    assert floor_of(request(3), p, T0 + 60.0) is None
    assert floor_of(None, p, T0) is None


def test_the_policy_bounds_win_over_the_request_and_the_reason_says_so() -> None:
    above = floor_of(request(9), policy(max=4), T0)
    assert above is not None
    assert above.workers == 4
    assert "clamped to 4: the policy's min 0 and max 4 win" in above.reason
    below = floor_of(request(0), policy(min=2), T0)
    assert below is not None
    assert below.workers == 2
    assert "clamped to 2: the policy's min 2 and max 5 win" in below.reason


async def test_the_floor_raises_an_idle_pool_and_holds_it_until_the_clock_passes_it() -> None:
    p = policy()
    scaler, clock, workers = Scaler(p), FakeClock(), 0
    wall = clock.now().timestamp()
    override = request(3, at=wall, for_s=120.0)
    decisions = []
    for _ in range(12):  # 2 minutes of an idle queue, every 10 s
        await clock.advance(10)
        floor = floor_of(override, p, clock.now().timestamp())
        d = scaler.decide([idle()], workers, clock.monotonic(), floor)
        decisions.append(d)
        workers = d.desired
    first = decisions[0]
    assert (first.current, first.desired, first.action) == (0, 3, "scale_up")
    assert first.floor is not None
    assert first.floor.incident_id == "inc-7"
    assert "requested 3" in first.reason
    assert "floor 3" in first.reason
    # idle far beyond idle_to_zero_after: the floor keeps the pool at 3 meanwhile
    assert [d.desired for d in decisions[:-1]] == [3] * 11
    # at 120 s the request lapsed: idle long enough, the pool goes back to 0
    last = decisions[-1]
    assert last.floor is None
    assert (last.desired, last.action) == (0, "scale_down")
    assert "scaling to zero" in last.reason


async def test_normal_scaling_still_adds_workers_above_the_floor() -> None:
    p = policy(scale_up={"stabilization": "0s"})
    scaler, now = Scaler(p), 1.0
    floor = floor_of(request(2), p, T0)
    d = scaler.decide([Reading(BACKLOG, 45.0, 10.0)], 2, now, floor)
    assert d.desired == 5  # ceil(45 / 10), clamped to max 5: more than the floor
    assert "floor 2" in d.reason


async def test_the_floor_overrides_step_limits_and_holds_through_unreadable_inputs() -> None:
    p = policy(max=10, scale_up={"stabilization": "0s", "workers": 1, "period": "60s"})
    floor = floor_of(request(6), p, T0)
    d = Scaler(p).decide([idle()], 0, 1.0, floor)
    assert d.desired == 6
    unread = Reading(BACKLOG, None, 10.0, error="consumer JOB_RUNS/worker_pool not found")
    held = Scaler(p).decide([unread], 1, 1.0, floor)
    assert (held.desired, held.degraded) == (6, True)
    assert "requested 6" in held.reason
    # no floor, unreadable: the usual hold, never a jump
    assert Scaler(p).decide([unread], 1, 1.0, None).desired == 1


def test_requests_are_kept_by_event_id_across_a_restart_and_forgotten_once_lapsed(
    tmp_path: Path,
) -> None:
    kept = Overrides(tmp_path)
    assert kept.put(request(3))
    assert not kept.put(request(3))  # a redelivery of the same event changes nothing
    assert not kept.put(request(1, at=T0 - 5, event="older"))  # an earlier request loses
    assert kept.put(request(4, at=T0 + 5, event="later"))
    again = Overrides(tmp_path)  # a restarted autoscaler
    held = again.get("ops.pool")
    assert held is not None
    assert (held.replicas, held.event_id) == (4, "later")
    assert again.prune(T0 + 64) == []
    assert [o.event_id for o in again.prune(T0 + 65)] == ["later"]
    assert Overrides(tmp_path).get("ops.pool") is None


def test_a_standby_sharing_the_state_directory_hands_its_requests_to_the_leader(
    tmp_path: Path,
) -> None:
    leader, standby = Overrides(tmp_path), Overrides(tmp_path)
    assert leader.get("ops.pool") is None
    assert standby.put(request(3))
    held = leader.get("ops.pool")
    assert held is not None
    assert held.replicas == 3


def test_a_closed_incident_releases_its_pools_and_a_late_request_of_it_is_not_kept(
    tmp_path: Path,
) -> None:
    kept = Overrides(tmp_path)
    woken: list[int] = []
    kept.listeners.append(lambda: woken.append(1))
    assert kept.put(request(3))
    other = Override(**{**request(2).as_json(), "pool": "other", "incident_id": "inc-8"})
    assert kept.put(other)
    [released] = kept.close("ops", "inc-7", forget_at=T0 + 60)
    assert released.event_id == "e1"
    assert kept.get("ops.pool") is None
    assert kept.get("ops.other") == other  # another incident's request stays
    assert len(woken) == 3
    # a redelivered (or late) request of the closed incident floors nothing
    assert not kept.put(request(3, event="e2"))
    assert Overrides(tmp_path).is_closed("ops", "inc-7")  # across a restart too
    kept.prune(T0 + 60)
    assert not kept.is_closed("ops", "inc-7")
