"""The autoscaler's decisions, with time as an argument: the HPA's proportional rule, tolerance,
stabilization and step limits, KEDA's activation and scale to zero, and a hold (never a jump)
when an input cannot be read."""

from __future__ import annotations

from typing import Any

from hms_autoscaler.core import BACKLOG, Decision, Reading, Scaler
from hms_autoscaler.core.series import SeriesWindow
from hms_contracts.config import ScalePolicy
from hms_kit import FakeClock


def policy(**fields: Any) -> ScalePolicy:
    base: dict[str, Any] = {"namespace": "ops", "name": "pool", "max": 5}
    return ScalePolicy.model_validate(base | fields)


def backlog(value: float | None, target: float = 10, activation: float = 0) -> Reading:
    error = None if value is not None else "consumer JOB_RUNS/worker_pool not found"
    return Reading(BACKLOG, value, target, activation, error)


class Pool:
    """A scaler whose decisions are put into effect at once, on a fake clock."""

    def __init__(self, p: ScalePolicy, workers: int = 0) -> None:
        self.scaler = Scaler(p)
        self.workers = workers
        self.clock = FakeClock()
        self.events: list[Decision] = []

    async def step(self, *readings: Reading, after: float = 1.0) -> Decision:
        await self.clock.advance(after)
        d = self.scaler.decide(list(readings), self.workers, self.clock.monotonic())
        if d.desired != self.workers:
            self.events.append(d)
        self.workers = d.desired
        return d


async def test_a_backlog_of_1000_scales_a_pool_at_zero_to_max_not_beyond() -> None:
    pool = Pool(policy(min=0, max=5))
    d = await pool.step(backlog(1000))
    assert (d.current, d.desired, d.recommended, d.action) == (0, 4, 5, "scale_up")
    assert "backlog 1000 / 10 per worker = 100" in d.reason
    assert "clamped to 5 (min 0, max 5)" in d.reason
    assert "step limit per 15s allows 4" in d.reason
    await pool.step(backlog(1000), after=15)
    assert pool.workers == 5


async def test_the_desired_count_is_the_ceiling_of_backlog_over_target() -> None:
    pool = Pool(policy(max=50, scale_up={"stabilization": "0s"}), workers=2)
    d = await pool.step(backlog(41))
    assert d.desired == 5


async def test_oscillating_load_within_tolerance_causes_no_scale_event() -> None:
    pool = Pool(policy(max=10), workers=5)
    for i in range(600):
        # 46..54 items for 5 workers of 10: within 10 % of the target
        await pool.step(backlog(50 + (4 if i % 2 else -4)))
    assert pool.events == []
    assert pool.workers == 5


async def test_oscillating_load_beyond_tolerance_scales_up_once_and_the_window_holds_it() -> None:
    pool = Pool(policy(max=10), workers=5)
    for i in range(300):
        await pool.step(backlog(70 if i % 2 else 40))
    # up to 7 at once (no scale-up window); the scale-down window keeps the highest
    assert [e.desired for e in pool.events] == [7]


async def test_scale_down_waits_for_the_stabilization_window() -> None:
    pool = Pool(policy(max=10, scale_down={"stabilization": "60s", "percent": 100}), workers=8)
    first = await pool.step(backlog(80))
    assert first.action == "hold"
    d = await pool.step(backlog(20))
    assert d.desired == 8
    assert "scale-down stabilization (60s) keeps 8" in d.reason
    for _ in range(58):
        await pool.step(backlog(20))
    assert pool.workers == 8
    d = await pool.step(backlog(20), after=2)
    assert (d.desired, d.action) == (2, "scale_down")


async def test_scale_up_window_takes_the_lowest_recommendation() -> None:
    pool = Pool(policy(max=10, scale_up={"stabilization": "10s", "workers": 10}), workers=1)
    await pool.step(backlog(10))
    d = await pool.step(backlog(100))
    assert d.desired == 1
    assert "scale-up stabilization (10s) keeps 1" in d.reason
    for _ in range(9):
        d = await pool.step(backlog(100))
    assert d.desired == 10


async def test_step_limits_count_from_the_start_of_the_period() -> None:
    p = policy(max=100, scale_up={"stabilization": "0s", "workers": 2, "period": "60s"})
    pool = Pool(p, workers=4)
    assert (await pool.step(backlog(1000))).desired == 6
    assert (await pool.step(backlog(1000))).desired == 6  # 2 already added in this period
    await pool.step(backlog(1000), after=60)
    assert pool.workers == 8


async def test_a_percent_step_limit_and_select_min() -> None:
    rules = {"stabilization": "0s", "workers": 10, "percent": 50, "select": "min"}
    pool = Pool(policy(max=100, scale_up=rules), workers=4)
    assert (await pool.step(backlog(1000))).desired == 6


async def test_scale_down_step_limit_by_workers() -> None:
    rules = {"stabilization": "0s", "workers": 1, "period": "10s"}
    pool = Pool(policy(max=10, min=1, scale_down=rules), workers=5)
    assert (await pool.step(backlog(10))).desired == 4
    assert (await pool.step(backlog(10))).desired == 4
    await pool.step(backlog(10), after=10)
    assert pool.workers == 3


async def test_activation_keeps_a_pool_at_zero_until_the_backlog_exceeds_it() -> None:
    pool = Pool(policy(activation_backlog=5))
    d = await pool.step(backlog(5, activation=5))
    assert (d.desired, d.action) == (0, "hold")
    assert "inactive (backlog 5 <= 5); staying at 0" in d.reason
    d = await pool.step(backlog(6, activation=5))
    assert d.desired == 1


async def test_an_idle_pool_goes_to_zero_only_after_the_idle_period() -> None:
    pool = Pool(policy(idle_to_zero_after="30s", scale_down={"stabilization": "10s"}), workers=3)
    await pool.step(backlog(30))
    for _ in range(29):
        await pool.step(backlog(0))
    assert pool.workers == 1  # down to one (the floor while active recently), not zero
    d = await pool.step(backlog(0))
    assert (d.desired, d.action) == (0, "scale_down")
    assert "idle 30s >= idle_to_zero_after 30s" in d.reason


async def test_a_pool_with_min_above_zero_never_goes_below_min() -> None:
    pool = Pool(policy(min=2, idle_to_zero_after="5s", scale_down={"stabilization": "0s"}))
    await pool.step(backlog(0))
    assert pool.workers == 2
    for _ in range(20):
        await pool.step(backlog(0))
    assert pool.workers == 2


async def test_an_unreadable_input_holds_the_count_and_says_why() -> None:
    pool = Pool(policy(max=5, scale_down={"stabilization": "0s"}), workers=3)
    d = await pool.step(backlog(None))
    assert (d.desired, d.action, d.degraded) == (3, "hold", True)
    assert "consumer JOB_RUNS/worker_pool not found" in d.reason
    assert "holding 3" in d.reason


async def test_an_unreadable_trigger_holds_even_when_the_backlog_says_zero() -> None:
    pool = Pool(policy(max=5, idle_to_zero_after="1s", scale_down={"stabilization": "0s"}), 4)
    stale = Reading("gateway.http_5xx_rate", None, 5.0, 0.0, "stale")
    for _ in range(10):
        d = await pool.step(backlog(0), stale)
    assert pool.workers == 4
    assert d.degraded


async def test_the_largest_trigger_wins() -> None:
    pool = Pool(policy(max=10), workers=1)
    rate = Reading('gateway.http_5xx_rate{route="/claims"}', 42.0, 5.0)
    d = await pool.step(backlog(3), rate)
    assert d.desired == 5  # 4 more at most from 1 worker: min(ceil(42 / 5) = 9, 1 + 4)
    assert 'gateway.http_5xx_rate{route="/claims"} 42 / 5 per worker = 9' in d.reason


async def test_a_metric_trigger_wakes_a_pool_at_zero() -> None:
    pool = Pool(policy(max=10))
    d = await pool.step(backlog(0), Reading("gateway.http_5xx_rate", 12.0, 5.0, 1.0))
    assert d.desired == 3


def test_a_series_window_folds_its_samples_and_goes_stale() -> None:
    p = policy(triggers=[{"series": 'gw.5xx{route="/c"}', "threshold": 5, "window": "10s"}])
    window = SeriesWindow(p.triggers[0])
    assert window.reading(100.0).error == "no sample received yet"
    assert window.matches("gw.5xx", {"route": "/c", "code": "503"})
    assert not window.matches("gw.5xx", {"route": "/d"})
    for at, value in [(89.0, 100.0), (95.0, 10.0), (99.0, 20.0)]:
        window.add(at, value)
    assert window.reading(100.0).value == 15.0  # the sample at 89 s is out of the window
    assert window.reading(120.0).error == "stale: last sample 21s ago (stale after 10s)"


async def test_the_period_start_counts_workers_removed_in_the_period_too() -> None:
    # scaled 0 -> 4 and back to 0 within one period: the pool may wake to 4 again at once
    up = {"stabilization": "0s", "workers": 4, "period": "60s"}
    down = {"stabilization": "0s", "percent": 100, "period": "60s"}
    p = policy(max=10, idle_to_zero_after="1s", scale_up=up, scale_down=down)
    pool = Pool(p)
    assert (await pool.step(backlog(100))).desired == 4
    await pool.step(backlog(0), after=2)
    assert pool.workers == 0
    assert (await pool.step(backlog(100))).desired == 4
