"""The SLA monitor with a hand-moved clock: every breach reason, each reported once, and a
dead scheduler caught before its deadline passes unnoticed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hms_contracts.config import Job
from hms_contracts.runs import RunCompleted, RunDeadLettered, RunFailed, RunStarted, run_id_for
from hms_evaluator.core.deadlines import DeadlineWatch

NS = "ssa"
MIDNIGHT = datetime(2026, 1, 2, tzinfo=UTC)
RUN = run_id_for("ssa_re_score", MIDNIGHT)


def ssa_job(**fields: Any) -> Job:
    doc: dict[str, Any] = {"id": "ssa_re_score", "schedule": "0 0 * * *", "queue": "ssa_re_score_q"}
    doc |= {"sla_minutes": 300, "image": "usgov/ssa-worker:v1"}
    return Job.model_validate({"namespace": NS, **doc, **fields})


def facts(run_id: str = RUN, **extra: Any) -> dict[str, Any]:
    job = {"job_id": "ssa_re_score", "queue": "ssa_re_score_q"}
    return {"namespace": NS, "run_id": run_id, **job, **extra}


def started(at: datetime, run_id: str = RUN) -> RunStarted:
    return RunStarted.create(**facts(run_id, occurred_at=at, worker_id="w1", attempt=1))


def completed(at: datetime, seconds: float, run_id: str = RUN) -> RunCompleted:
    return RunCompleted.create(**facts(run_id, occurred_at=at, items=1, duration_s=seconds))


def watching(now: datetime, **fields: Any) -> DeadlineWatch:
    watch = DeadlineWatch()
    watch.set_jobs([ssa_job(**fields)], now)
    return watch


def reasons(breaches: list[Any]) -> list[str]:
    return [b.reason for b in breaches]


def test_a_dead_scheduler_is_caught_as_not_fired_at_the_deadline_at_the_latest() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1))
    assert watch.tick(MIDNIGHT + timedelta(hours=4, minutes=59)) == []
    [breach] = watch.tick(MIDNIGHT + timedelta(hours=5))
    assert (breach.reason, breach.run_id) == ("not_fired", RUN)
    assert breach.deadline == MIDNIGHT + timedelta(hours=5)
    assert breach.subject() == f"sla.breach.{NS}"
    assert watch.tick(MIDNIGHT + timedelta(hours=6)) == []  # once


def test_not_fired_comes_as_soon_as_a_run_of_its_usual_length_could_not_finish() -> None:
    watch = watching(MIDNIGHT - timedelta(days=1, hours=1))
    yesterday = MIDNIGHT - timedelta(days=1)
    y_run = run_id_for("ssa_re_score", yesterday)
    watch.tick(yesterday + timedelta(minutes=1))
    watch.on_event(started(yesterday + timedelta(minutes=1), y_run), yesterday)
    watch.on_event(completed(yesterday + timedelta(hours=2), 2 * 3600, y_run), yesterday)
    assert watch.tick(MIDNIGHT + timedelta(hours=2, minutes=59)) == []
    breaches = watch.tick(MIDNIGHT + timedelta(hours=3))  # 3 h left, a run takes 2 h
    assert reasons(breaches) == ["not_fired"]
    assert breaches[0].deadline is not None
    assert breaches[0].occurred_at < breaches[0].deadline


def test_a_run_that_completes_in_time_breaches_nothing() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1))
    watch.tick(MIDNIGHT)
    assert watch.on_event(started(MIDNIGHT + timedelta(seconds=5)), MIDNIGHT) == []
    assert watch.on_event(completed(MIDNIGHT + timedelta(hours=1), 3600), MIDNIGHT) == []
    assert watch.tick(MIDNIGHT + timedelta(hours=6)) == []


def test_a_run_still_going_at_its_deadline_overruns() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1))
    watch.tick(MIDNIGHT)
    watch.on_event(started(MIDNIGHT + timedelta(minutes=1)), MIDNIGHT)
    assert watch.tick(MIDNIGHT + timedelta(hours=4)) == []
    assert reasons(watch.tick(MIDNIGHT + timedelta(hours=5))) == ["run_overrun"]
    late = completed(MIDNIGHT + timedelta(hours=6), 6 * 3600)
    assert watch.on_event(late, MIDNIGHT + timedelta(hours=6)) == []  # already reported


def test_a_run_waiting_in_its_queue_past_its_latest_start_is_queue_wait() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1))
    watch.tick(MIDNIGHT)
    at_five = MIDNIGHT + timedelta(hours=5)
    assert [r.run_id for r in watch.at_risk(at_five)] == [RUN]
    assert reasons(watch.tick(at_five, enqueued={(NS, RUN)})) == ["queue_wait"]
    assert watch.at_risk(at_five) == []


def test_a_run_that_starts_too_late_for_its_usual_pace_waited_in_the_queue() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1))
    watch.durations[ssa_job().key()] = 3 * 3600
    watch.tick(MIDNIGHT + timedelta(hours=1))
    breaches = watch.on_event(started(MIDNIGHT + timedelta(hours=2, minutes=30)), MIDNIGHT)
    # at 02:30 with three hours to go it cannot finish by 05:00
    assert reasons(breaches) == ["queue_wait"]


def test_a_run_that_fails_for_good_breaches_at_once_and_a_retry_does_not() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1))
    watch.tick(MIDNIGHT)
    watch.on_event(started(MIDNIGHT), MIDNIGHT)
    retry = RunFailed.create(
        **facts(occurred_at=MIDNIGHT, error="exit 1", attempt=1, will_retry=True, retry_in_s=60)
    )
    assert watch.on_event(retry, MIDNIGHT) == []
    gave_up = RunDeadLettered.create(**facts(occurred_at=MIDNIGHT, reason="exit 1", attempts=2))
    [breach] = watch.on_event(gave_up, MIDNIGHT + timedelta(minutes=5))
    assert breach.reason == "failed"
    assert "exit 1" in breach.detail
    assert watch.tick(MIDNIGHT + timedelta(hours=6)) == []


def test_slots_skipped_after_downtime_are_missed_catchup() -> None:
    hourly = {"schedule": "0 * * * *", "sla_minutes": 180}
    watch = watching(MIDNIGHT - timedelta(minutes=30), **hourly)
    watch.tick(MIDNIGHT + timedelta(hours=2, minutes=1))  # expects 00:00, 01:00, 02:00
    latest = run_id_for("ssa_re_score", MIDNIGHT + timedelta(hours=2))
    breaches = watch.on_event(started(MIDNIGHT + timedelta(hours=2, minutes=1), latest), MIDNIGHT)
    assert sorted((b.reason, b.run_id) for b in breaches) == [
        ("missed_catchup", run_id_for("ssa_re_score", MIDNIGHT)),
        ("missed_catchup", run_id_for("ssa_re_score", MIDNIGHT + timedelta(hours=1))),
    ]


def test_a_paused_job_is_not_expected() -> None:
    watch = watching(MIDNIGHT - timedelta(hours=1), paused=True)
    assert watch.tick(MIDNIGHT + timedelta(hours=6)) == []
