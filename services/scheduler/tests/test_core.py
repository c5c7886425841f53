"""The scheduler's decisions, to the letter: slots in the job's time zone across daylight-saving
changes, the watermark, catch-up after downtime, jitter, overlap and pause."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hms_contracts.config import Job
from hms_scheduler.core import Decision, due, jitter_for, slot, slots_after

NY = "America/New_York"


def job(schedule: str = "0 0 * * *", **fields: Any) -> Job:
    return Job.model_validate(
        {"namespace": "ssa", "id": "nightly", "schedule": schedule, "queue": "q"}
        | {"command": ["true"]}
        | fields
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def hours(slots: list[datetime]) -> list[str]:
    return [s.strftime("%m-%dT%H:%MZ") for s in slots]


def slots_between(j: Job, start: datetime, end: datetime) -> list[datetime]:
    out: list[datetime] = []
    for at in slots_after(j, start):
        if at > end:
            return out
        out.append(at)
    return out


def run_ids(decision: Decision) -> list[str]:
    return [s.run_id for s in decision.enqueue]


# --- slots across daylight-saving changes (America/New_York, 2026-03-08 and 2026-11-01) ---------


def test_a_fixed_time_job_in_a_skipped_hour_runs_once_as_soon_as_the_clock_is_past_it() -> None:
    j = job("30 2 * * *", timezone=NY)
    assert hours(slots_between(j, utc("2026-03-07T00:00"), utc("2026-03-10T00:00"))) == [
        "03-07T07:30Z",  # 02:30 EST
        "03-08T07:00Z",  # 02:30 does not exist: 03:00 EDT, once
        "03-09T06:30Z",  # 02:30 EDT
    ]


def test_a_fixed_time_job_runs_once_in_a_repeated_hour() -> None:
    j = job("30 1 * * *", timezone=NY)
    assert hours(slots_between(j, utc("2026-10-31T00:00"), utc("2026-11-03T00:00"))) == [
        "10-31T05:30Z",  # 01:30 EDT
        "11-01T05:30Z",  # 01:30 EDT, the first pass; not again at 01:30 EST
        "11-02T06:30Z",  # 01:30 EST
    ]


def test_a_fixed_time_job_read_from_inside_the_repeated_hour_skips_its_first_pass() -> None:
    j = job("30 1 * * *", timezone=NY)
    after = utc("2026-11-01T06:10")  # 01:10 EST: the 01:30 EDT slot (05:30Z) has passed
    assert next(slots_after(j, after)) == utc("2026-11-02T06:30")


def test_a_fixed_time_job_after_2_am_is_unaffected_by_the_autumn_change() -> None:
    j = job("30 2 * * *", timezone=NY)
    assert hours(slots_between(j, utc("2026-10-31T12:00"), utc("2026-11-02T12:00"))) == [
        "11-01T07:30Z",  # 02:30 EST
        "11-02T07:30Z",
    ]


def test_an_hourly_job_follows_real_time_across_both_changes() -> None:
    j = job("0 * * * *", timezone=NY)
    spring = slots_between(j, utc("2026-03-08T05:30"), utc("2026-03-08T08:30"))
    assert hours(spring) == ["03-08T06:00Z", "03-08T07:00Z", "03-08T08:00Z"]  # 01, 03, 04 local
    autumn = slots_between(j, utc("2026-11-01T04:30"), utc("2026-11-01T07:30"))
    assert hours(autumn) == ["11-01T05:00Z", "11-01T06:00Z", "11-01T07:00Z"]  # 01 EDT, 01 EST, 02


def test_an_interval_job_runs_every_real_quarter_hour_through_the_repeated_hour() -> None:
    j = job("*/15 * * * *", timezone=NY)
    autumn = slots_between(j, utc("2026-11-01T05:00"), utc("2026-11-01T07:00"))
    assert len(autumn) == 8, "two real hours, both passes of 01:xx"
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(autumn))


def test_a_utc_job_fires_at_midnight_utc() -> None:
    assert hours(slots_between(job(), utc("2026-01-01T00:00"), utc("2026-01-02T00:00"))) == [
        "01-02T00:00Z"
    ]


# --- the watermark ---------------------------------------------------------------------------


def test_a_new_job_starts_from_now_and_its_past_slots_are_not_its_own() -> None:
    decision = due(job(), None, utc("2026-01-01T12:00"))
    assert decision.enqueue == ()
    assert decision.skipped == ()
    assert decision.watermark == utc("2026-01-01T12:00")
    assert decision.next_at == utc("2026-01-02T00:00")


def test_a_slot_is_due_once_its_time_has_come_and_the_watermark_moves_to_it() -> None:
    j = job()
    decision = due(j, utc("2026-01-01T12:00"), utc("2026-01-02T00:00:01"))
    assert run_ids(decision) == ["nightly@2026-01-02T00:00:00Z"]
    assert decision.watermark == utc("2026-01-02T00:00")
    again = due(j, decision.watermark, utc("2026-01-02T00:00:30"))
    assert again.enqueue == (), "a slot at or before the watermark is never due again"


def test_a_clock_stepping_back_ten_minutes_refires_nothing() -> None:
    j = job("*/5 * * * *")
    first = due(j, utc("2026-01-01T11:50"), utc("2026-01-01T12:00:10"))
    assert run_ids(first) == ["nightly@2026-01-01T12:00:00Z"]
    stepped_back = utc("2026-01-01T11:50:10")
    for minute in range(0, 11):
        decision = due(j, first.watermark, stepped_back + timedelta(minutes=minute))
        assert decision.enqueue == ()
        assert decision.watermark == first.watermark
    later = due(j, first.watermark, utc("2026-01-01T12:05:00"))
    assert run_ids(later) == ["nightly@2026-01-01T12:05:00Z"], "then it goes on as before"


# --- catch-up after downtime -------------------------------------------------------------------


def test_three_days_down_on_an_every_minute_job_runs_the_latest_slot_and_reports_the_rest() -> None:
    j = job("* * * * *")
    down, up = utc("2026-01-01T00:00"), utc("2026-01-04T00:00:30")
    decision = due(j, down, up)
    assert run_ids(decision) == ["nightly@2026-01-04T00:00:00Z"], "one period: the latest slot"
    missed = decision.skipped_for("missed")
    assert missed is not None
    assert missed.count == 3 * 24 * 60 - 1
    assert missed.run_ids[:2] == ("nightly@2026-01-01T00:01:00Z", "nightly@2026-01-01T00:02:00Z")
    assert len(missed.run_ids) == 100, "listed up to report_limit, counted in full"
    assert decision.watermark == utc("2026-01-04T00:00")


def test_catch_up_runs_each_missed_slot_inside_the_window_once_up_to_its_cap() -> None:
    j = job("* * * * *", catchup_window="1h", overlap="allow")
    decision = due(j, utc("2026-01-01T00:00"), utc("2026-01-04T00:00:30"), catchup_limit=10)
    assert run_ids(decision) == [f"nightly@2026-01-03T23:{m}:00Z" for m in range(51, 60)] + [
        "nightly@2026-01-04T00:00:00Z"
    ]
    missed = decision.skipped_for("missed")
    assert missed is not None
    assert missed.count == 3 * 24 * 60 - 10


def test_a_nightly_job_down_overnight_still_runs_its_midnight_slot() -> None:
    decision = due(job(), utc("2026-01-01T23:00"), utc("2026-01-02T09:00"))
    assert run_ids(decision) == ["nightly@2026-01-02T00:00:00Z"]


def test_a_slot_older_than_the_window_is_reported_missed_not_run() -> None:
    j = job(catchup_window="2h")
    decision = due(j, utc("2026-01-01T23:00"), utc("2026-01-02T09:00"))
    assert decision.enqueue == ()
    missed = decision.skipped_for("missed")
    assert missed is not None
    assert missed.run_ids == ("nightly@2026-01-02T00:00:00Z",)


def test_a_year_of_backlog_is_read_in_bounded_steps_and_reported_never_run() -> None:
    j = job("* * * * *", catchup_window="1h", overlap="allow")
    watermark, now, missed, rounds = utc("2025-01-01T00:00"), utc("2025-03-01T00:00:30"), 0, 0
    while True:
        decision = due(j, watermark, now, scan_limit=20_000)
        rounds += 1
        skipped = decision.skipped_for("missed")
        missed += skipped.count if skipped else 0
        watermark = decision.watermark
        if not decision.more:
            break
        assert decision.enqueue == (), "a step that stopped early runs nothing"
    assert rounds == 5
    assert len(decision.enqueue) == 10
    assert missed + 10 == 59 * 24 * 60


# --- jitter ------------------------------------------------------------------------------------


def test_jitter_is_the_same_for_a_run_on_every_instance_and_within_bounds() -> None:
    run_ids = [f"nightly@2026-01-0{d}T00:00:00Z" for d in range(1, 10)]
    delays = [jitter_for(r, timedelta(minutes=5)) for r in run_ids]
    assert delays == [jitter_for(r, timedelta(minutes=5)) for r in run_ids]
    assert all(timedelta(0) <= d <= timedelta(minutes=5) for d in delays)
    assert len(set(delays)) > 1
    assert jitter_for(run_ids[0], timedelta(0)) == timedelta(0)


def test_a_jittered_slot_waits_for_its_delay_and_holds_the_watermark_before_it() -> None:
    j = job(jitter="5m")
    s = slot(j, utc("2026-01-02T00:00"))
    assert s.fire_at > s.scheduled_at
    early = due(j, utc("2026-01-01T12:00"), s.fire_at - timedelta(milliseconds=1))
    assert early.enqueue == ()
    assert early.watermark == utc("2026-01-01T12:00")
    assert early.next_at == s.fire_at
    on_time = due(j, early.watermark, s.fire_at)
    assert on_time.enqueue == (s,)


# --- overlap and pause -------------------------------------------------------------------------

ACTIVE = ("nightly@2026-01-01T00:00:00Z",)


def test_forbid_skips_a_slot_while_a_run_is_active_and_reports_it() -> None:
    decision = due(job(), utc("2026-01-01T12:00"), utc("2026-01-02T00:01"), active=ACTIVE)
    assert decision.enqueue == ()
    overlap = decision.skipped_for("overlap")
    assert overlap is not None
    assert overlap.run_ids == ("nightly@2026-01-02T00:00:00Z",)
    assert decision.watermark == utc("2026-01-02T00:00")


def test_forbid_catches_up_with_the_newest_slot_only_so_runs_never_overlap() -> None:
    j = job("0 * * * *", catchup_window="3h")
    decision = due(j, utc("2026-01-01T00:00"), utc("2026-01-01T03:30"))
    assert run_ids(decision) == ["nightly@2026-01-01T03:00:00Z"]
    overlap = decision.skipped_for("overlap")
    assert overlap is not None
    assert overlap.count == 2


def test_allow_runs_while_another_run_is_active() -> None:
    decision = due(
        job(overlap="allow"), utc("2026-01-01T12:00"), utc("2026-01-02T00:01"), active=ACTIVE
    )
    assert run_ids(decision) == ["nightly@2026-01-02T00:00:00Z"]
    assert decision.cancel == ()


def test_replace_cancels_the_active_run_then_starts_the_new_one() -> None:
    decision = due(
        job(overlap="replace"), utc("2026-01-01T12:00"), utc("2026-01-02T00:01"), active=ACTIVE
    )
    assert decision.cancel == ACTIVE
    assert run_ids(decision) == ["nightly@2026-01-02T00:00:00Z"]


def test_a_paused_job_fires_nothing_reports_its_slots_and_resumes_from_then() -> None:
    j = job("0 * * * *")
    paused = due(
        j.model_copy(update={"paused": True}), utc("2026-01-01T00:00"), utc("2026-01-01T05:30")
    )
    assert paused.enqueue == ()
    skipped = paused.skipped_for("paused")
    assert skipped is not None
    assert skipped.count == 5
    assert paused.watermark == utc("2026-01-01T05:00")
    resumed = due(j, paused.watermark, utc("2026-01-01T05:40"))
    assert resumed.enqueue == (), "nothing accumulated while paused"
    assert run_ids(due(j, paused.watermark, utc("2026-01-01T06:00"))) == [
        "nightly@2026-01-01T06:00:00Z"
    ]


def test_every_slot_is_decided_once_across_consecutive_decisions() -> None:
    j = job("*/7 * * * *", timezone=NY, catchup_window="30m", overlap="allow")
    watermark, now = utc("2026-11-01T04:00"), utc("2026-11-01T04:00")
    seen: list[str] = []
    while now < utc("2026-11-01T09:00"):
        now += timedelta(minutes=3)
        decision = due(j, watermark, now)
        seen += [s.run_id for s, _ in decision.decided]
        watermark = decision.watermark
    expected = slots_between(j, utc("2026-11-01T04:00"), now)
    assert seen == [slot(j, at).run_id for at in expected]


@pytest.mark.parametrize("limit", [0, 1])
def test_the_catch_up_cap_bounds_the_runs_of_one_decision(limit: int) -> None:
    j = job("* * * * *", catchup_window="1h", overlap="allow")
    decision = due(j, utc("2026-01-01T00:00"), utc("2026-01-01T02:00"), catchup_limit=limit)
    assert len(decision.enqueue) == limit
