"""The scheduler against a real nats-server, its time moved by hand: a run is enqueued once
across restarts and instances, downtime is caught up with a cap and the rest announced, daylight
saving changes follow Debian cron, and a clock stepping back re-fires nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import specs
from hms_contracts.config import Job
from hms_contracts.runs import RunScheduled
from hms_kit import FakeClock, Service, ensure_stream
from hms_ops.configstore import ConfigStore
from hms_scheduler.adapters import NoActiveRuns, SqliteLedger, StaticJobs
from hms_scheduler.app import LEDGER_FILE, create_service
from hms_scheduler.core import Decision
from hms_scheduler.firing import Firing, SchedulerMetrics
from hms_scheduler.settings import SchedulerSettings
from hms_testing import NatsHandle, running, wait_until
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

NS = "ssa"


class SteppingClock(FakeClock):
    """A fake clock whose wall time can also step backwards (an NTP correction), and that
    tells how many sleeps began and how many are under way (a loop idle between ticks)."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.offset = timedelta(0)
        self.sleeps = 0
        self.sleeping = 0

    def now(self) -> datetime:
        return super().now() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.sleeping += 1
        try:
            await super().sleep(seconds)
        finally:
            self.sleeping -= 1

    async def idle(self) -> None:
        await wait_until(lambda: self.sleeping > 0, timeout=10, message="the loop is idle")

    async def tick(self, seconds: float) -> None:
        """Move time on once the loop is idle, and return once it ticked and is idle again."""
        await self.idle()
        before = self.sleeps
        await self.advance(seconds)
        await wait_until(lambda: self.sleeps > before, timeout=10, message="a tick ran")


def ssa_job(**fields: Any) -> Job:
    doc: dict[str, Any] = {"id": "ssa_re_score", "schedule": "0 0 * * *", "queue": "ssa_re_score_q"}
    doc |= {"sla_minutes": 300, "image": "usgov/ssa-worker:v1"}
    return Job.model_validate({"namespace": NS, **doc, **fields})


def settings_for(nats: NatsHandle, state: Path) -> SchedulerSettings:
    return SchedulerSettings(nats_url=nats.url, state_dir=state, heartbeat_interval_s=60)


@asynccontextmanager
async def leading(
    nats: NatsHandle, state: Path, clock: SteppingClock, jobs: Sequence[Job]
) -> AsyncIterator[Service]:
    """A scheduler service that leads, its loop idle between ticks."""
    service = create_service(settings_for(nats, state), clock=clock, jobs=StaticJobs(jobs))
    async with running(service):
        await wait_until(lambda: service.leader, timeout=10, message="it leads")
        await clock.idle()
        yield service


async def runs(js: JetStreamContext) -> list[RunScheduled]:
    """Every run in the work queue, in order."""
    try:
        info = await js.stream_info(specs.JOB_RUNS.name)
    except NotFoundError:
        return []
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(specs.JOB_RUNS.name, seq)
        run = RunScheduled.model_validate_json(msg.data or b"")
        assert (msg.headers or {}).get("Nats-Msg-Id") == run.event_id
        out.append(run)
    return out


def metric(service: Service, name: str) -> float:
    value = service.metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


async def test_the_documents_job_enqueues_its_midnight_run_on_its_queue(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    async with leading(nats_server, tmp_path, clock, [ssa_job()]):
        await clock.tick(61)
        [run] = await runs(js)
    assert run.subject() == "job.run.ssa.ssa_re_score_q"
    assert run.run_id == "ssa_re_score@2026-01-02T00:00:00Z"
    assert run.deadline == datetime(2026, 1, 2, 5, 0, tzinfo=UTC)
    assert run.task["image"] == "usgov/ssa-worker:v1"


async def test_a_run_is_enqueued_once_across_a_restart(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    async with leading(nats_server, tmp_path, clock, [ssa_job()]) as first:
        await clock.tick(61)
        assert metric(first, "hms_scheduler_runs_enqueued_total") == 1
    async with leading(nats_server, tmp_path, clock, [ssa_job()]) as second:
        await clock.tick(30)
        await clock.tick(3600)
        assert metric(second, "hms_scheduler_runs_enqueued_total") == 0
        assert metric(second, "hms_scheduler_runs_duplicate_total") == 0, (
            "the watermark, not the dedupe window, kept it from publishing again"
        )
    assert [r.run_id for r in await runs(js)] == ["ssa_re_score@2026-01-02T00:00:00Z"]


async def test_two_instances_at_once_enqueue_one_run_and_only_the_leader_publishes(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    standby_jobs = StaticJobs([ssa_job()])
    async with leading(nats_server, tmp_path / "a", clock, [ssa_job()]) as leader:
        standby = create_service(
            settings_for(nats_server, tmp_path / "b"), clock=clock, jobs=standby_jobs
        )
        async with running(standby):
            assert standby.leader is False
            await clock.tick(61)
            assert metric(standby, "hms_scheduler_runs_enqueued_total") == 0
            assert metric(leader, "hms_scheduler_runs_enqueued_total") == 1
    assert [r.run_id for r in await runs(js)] == ["ssa_re_score@2026-01-02T00:00:00Z"]


async def test_two_schedulers_that_both_believe_they_lead_still_enqueue_one_run(
    js: JetStreamContext, tmp_path: Path
) -> None:
    await ensure_stream(js, specs.JOB_RUNS)
    clock = FakeClock(datetime(2026, 1, 2, 0, 0, 5, tzinfo=UTC))
    firings, registries = [], []
    for name in ("a", "b"):
        ledger = SqliteLedger(tmp_path / name / LEDGER_FILE)
        seen = Decision(watermark=datetime(2026, 1, 1, 23, tzinfo=UTC))
        await ledger.record(ssa_job(), seen, seen.watermark)  # both saw the job before midnight
        registries.append(CollectorRegistry())
        metrics = SchedulerMetrics(registries[-1])
        firings.append(
            Firing(js, StaticJobs([ssa_job()]), ledger, NoActiveRuns(), clock, metrics=metrics)
        )
    for firing in firings:
        await firing.tick()
    published = [r.get_sample_value("hms_scheduler_runs_enqueued_total") for r in registries]
    duplicates = [r.get_sample_value("hms_scheduler_runs_duplicate_total") for r in registries]
    assert (published, duplicates) == ([1, 0], [0, 1])
    assert len(await runs(js)) == 1
    for firing in firings:
        assert isinstance(firing.ledger, SqliteLedger)
        assert await firing.ledger.outcomes(ssa_job().key()) == {
            "ssa_re_score@2026-01-02T00:00:00Z": "run"
        }
        await firing.ledger.close()


async def test_three_days_down_on_an_every_minute_job_yields_the_capped_catch_up_and_the_misses(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    job = ssa_job(schedule="* * * * *", catchup_window="1h", overlap="allow", sla_minutes=None)
    async with leading(nats_server, tmp_path, clock, [job]):
        pass  # it saw the job: its watermark is now
    await clock.advance(3 * 24 * 3600)  # down for three days
    async with leading(nats_server, tmp_path, clock, [job]) as service:
        await wait_until(
            lambda: metric(service, "hms_scheduler_runs_enqueued_total") == 10,
            timeout=10,
            message="the capped catch-up",
        )
        missed = service.metrics.registry.get_sample_value(
            "hms_scheduler_slots_skipped_total", {"reason": "missed"}
        )
        ledger = service.broker.context.get("ledger")
        outcomes = await ledger.outcomes(job.key())
    assert missed == 3 * 24 * 60 - 10
    assert len(await runs(js)) == 10
    assert len(outcomes) == 3 * 24 * 60, "every slot is accounted for, by run id"
    assert sorted(set(outcomes.values())) == ["missed", "run"]
    assert outcomes["ssa_re_score@2026-01-01T00:01:00Z"] == "missed"
    assert outcomes["ssa_re_score@2026-01-04T00:00:00Z"] == "run"


DST_CASES = {
    # (schedule, first instant, expected run ids: slot UTC, with the local time they stand for)
    "spring, 02:30 runs once at 03:00": ("30 2 * * *", "2026-03-08T04:00", ["07:00"]),
    "spring, hourly skips the missing hour": (
        "0 * * * *",
        "2026-03-08T04:00",
        ["05:00", "06:00", "07:00", "08:00"],  # 00:00 EST, 01:00 EST, 03:00 EDT, 04:00 EDT
    ),
    "autumn, 02:30 runs once": ("30 2 * * *", "2026-11-01T04:00", ["07:30"]),
    "autumn, hourly runs both 01:00s": (
        "0 * * * *",
        "2026-11-01T04:00",
        ["05:00", "06:00", "07:00", "08:00"],  # 01:00 EDT, 01:00 EST, 02:00 EST, 03:00 EST
    ),
}


@pytest.mark.parametrize("case", DST_CASES)
async def test_daylight_saving_in_new_york_follows_debian_cron(
    case: str, nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    schedule, start, expected = DST_CASES[case]
    clock = SteppingClock(datetime.fromisoformat(start).replace(tzinfo=UTC))
    job = ssa_job(schedule=schedule, timezone="America/New_York", overlap="allow")
    async with leading(nats_server, tmp_path, clock, [job]):
        for _ in range(4 * 4 + 2):  # four and a half hours, a tick every quarter
            await clock.tick(15 * 60)
    day = start[:10]
    assert [r.run_id for r in await runs(js)] == [f"ssa_re_score@{day}T{t}:00Z" for t in expected]


async def test_a_clock_stepping_back_ten_minutes_refires_nothing(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, 11, 59, 30, tzinfo=UTC))
    job = ssa_job(schedule="*/5 * * * *", sla_minutes=None)
    async with leading(nats_server, tmp_path, clock, [job]):
        await clock.tick(60)  # 12:00:30
        clock.offset = -timedelta(minutes=10)  # 11:50:30
        for _ in range(14):  # up to 12:04:30
            await clock.tick(60)
        assert [r.run_id for r in await runs(js)] == ["ssa_re_score@2026-01-01T12:00:00Z"]
        await clock.tick(60)  # 12:05:30
    assert [r.run_id for r in await runs(js)] == [
        "ssa_re_score@2026-01-01T12:00:00Z",
        "ssa_re_score@2026-01-01T12:05:00Z",
    ]


async def test_a_job_applied_to_the_config_registry_is_followed_without_a_restart(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    service = create_service(settings_for(nats_server, tmp_path), clock=clock)  # the registry
    async with running(service):
        await wait_until(lambda: service.leader, timeout=10, message="it leads")
        store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="ops")
        await store.apply([ssa_job()])
        await wait_until(
            lambda: service.config.objects("job") == [ssa_job()], 2, message="the job followed"
        )
        await clock.tick(1)  # a tick that sees the new job: its schedule starts from here
        await clock.tick(60)
        assert [r.run_id for r in await runs(js)] == ["ssa_re_score@2026-01-02T00:00:00Z"]
