"""Overlap policies enforced from the worker-pool's run events, with the worker as a real
subprocess: ``forbid`` skips a slot while the job's run is under way; ``replace`` asks the
worker to stop the running one (its process group is killed) and enqueues the new one."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import specs
from hms_contracts.config import Job
from hms_kit import FakeClock, ensure_stream
from hms_scheduler.adapters import RunEventsView, SqliteLedger, StaticJobs
from hms_scheduler.firing import Firing
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from hms_testing.runs import kinds, run_events
from hms_worker_pool.store import OUTCOMES_FILE, read_outcomes
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PY = sys.executable


async def start_worker(start_service: ServiceLauncher, js: JetStreamContext) -> ServiceProcess:
    await ensure_stream(js, specs.JOB_RUNS)
    env = {"ACK_WAIT_S": "5", "KILL_GRACE_S": "1", "CONCURRENCY": "2"}
    return await start_service(
        "hms_worker_pool", env={f"HMS_WORKER_POOL_{k}": v for k, v in env.items()}
    )


def long_job(ns: str, overlap: str, pids: Path) -> Job:
    script = (
        "import os, pathlib, time\n"
        f"p = pathlib.Path({str(pids)!r})\n"
        "p.mkdir(exist_ok=True)\n"
        "(p / os.environ['HMS_RUN_ID'].replace(':', '_')).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    return Job.model_validate(
        {
            "namespace": ns,
            "name": "rescore",
            "schedule": "* * * * *",
            "queue": "q",
            "overlap": overlap,
            "command": [PY, "-c", script],
        }
    )


async def fired(
    js: JetStreamContext, tmp_path: Path, job: Job
) -> tuple[Firing, FakeClock, RunEventsView, SqliteLedger]:
    clock = FakeClock(T0 - timedelta(seconds=1))
    view = RunEventsView(lambda: js)
    await view.start()
    ledger = SqliteLedger(tmp_path / "scheduler.sqlite3")
    firing = Firing(js, StaticJobs([job]), ledger, view, clock)
    await wait_until(view.caught_up.is_set, timeout=10, message="the view caught up")
    await firing.tick()  # the job is seen; its schedule starts here
    await clock.set(T0)
    await firing.tick()
    return firing, clock, view, ledger


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_forbid_skips_a_slot_while_the_run_is_under_way(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    await start_worker(start_service, js)
    ns = f"ns_{secrets.token_hex(3)}"
    job = long_job(ns, "forbid", tmp_path / "pids")
    firing, clock, view, ledger = await fired(js, tmp_path, job)
    try:
        await wait_until(lambda: view.runs.get((ns, "rescore")), timeout=20, message="started")
        await clock.set(T0 + timedelta(minutes=1))
        await firing.tick()
        outcomes = await ledger.outcomes(job.key())
        assert list(outcomes.values()) == ["run", "overlap"]
    finally:
        await view.close()
        await ledger.close()


async def test_replace_stops_the_running_run_and_enqueues_the_new_one(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js)
    ns = f"ns_{secrets.token_hex(3)}"
    pids = tmp_path / "pids"
    job = long_job(ns, "replace", pids)
    firing, clock, view, ledger = await fired(js, tmp_path, job)
    try:
        await wait_until(lambda: view.runs.get((ns, "rescore")), timeout=20, message="started")
        [first_run] = view.runs[(ns, "rescore")]
        await wait_until(lambda: pids.exists() and any(pids.iterdir()), timeout=20, message="pid")
        [first_pid] = [int(p.read_text()) for p in pids.iterdir()]
        await clock.set(T0 + timedelta(minutes=1))
        await firing.tick()

        def first_ended() -> bool:
            return any(o[1] == first_run for o in read_outcomes(worker.state_dir / OUTCOMES_FILE))

        await wait_until(first_ended, timeout=20, message="the first run stopped")
        assert not alive(first_pid)
        [(_, _, outcome, _)] = [
            o for o in read_outcomes(worker.state_dir / OUTCOMES_FILE) if o[1] == first_run
        ]
        assert outcome == "cancelled"
        second = job.run_at(T0 + timedelta(minutes=1), T0).run_id
        await wait_until(
            lambda: second in view.runs.get((ns, "rescore"), set()), timeout=20, message="second"
        )
        events: list[dict[str, Any]] = await run_events(js, ns)
        assert "cancel_requested" in kinds(events)
        failed = [e for e in events if e["subject"].endswith(".failed")]
        assert [(e["run_id"], e["will_retry"]) for e in failed] == [(first_run, False)]
        assert failed[0]["error"] == f"cancelled: replaced by run {second}"
    finally:
        await view.close()
        await ledger.close()
