"""A person's hands on the work, against a real nats-server and the worker as a subprocess: a
queue paused mid-run hands out nothing more until resumed, then the run completes with each
item done once; a run of a job with approval waits, announced, until approved."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import specs
from hms_contracts.config import Job
from hms_contracts.runs import RunScheduled, run_key
from hms_kit import ensure_bucket, ensure_stream, publish
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from hms_testing.jobtasks import ITEMS, RECORD
from hms_testing.runs import kinds, run_events
from hms_worker_pool.store import OUTCOMES_FILE, read_outcomes
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow


async def start_worker(
    start_service: ServiceLauncher, js: JetStreamContext, **extra: str
) -> ServiceProcess:
    await ensure_stream(js, specs.JOB_RUNS)
    env = {"ACK_WAIT_S": "3", "KILL_GRACE_S": "1", "CONCURRENCY": "2", "ITEMS_FETCH": "1"}
    return await start_service(
        "hms_worker_pool", env={**{f"HMS_WORKER_POOL_{k}": v for k, v in env.items()}, **extra}
    )


async def schedule(js: JetStreamContext, ns: str, **job: Any) -> RunScheduled:
    spec = Job.model_validate(
        {"namespace": ns, "name": "rescore", "schedule": "0 0 * * *", "queue": "q", **job}
    )
    run = spec.run_at(datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC))
    await publish(js, run)
    return run


def outcomes(proc: ServiceProcess) -> list[tuple[str, str, str, int]]:
    return read_outcomes(proc.state_dir / OUTCOMES_FILE)


def lines(path: Path) -> list[int]:
    return [int(i) for i in path.read_text().split()] if path.exists() else []


async def test_a_queue_paused_mid_run_hands_out_nothing_until_resumed(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    record = tmp_path / "done"
    env = {ITEMS: "300", RECORD: str(record), "HMS_TEST_ITEM_S": "0.02"}
    worker = await start_worker(start_service, js, **env)
    control = await ensure_bucket(js, specs.JOB_CONTROL)
    kv = await js.key_value(specs.JOB_CONTROL.bucket)
    ns = f"ns_{secrets.token_hex(3)}"
    run = await schedule(js, ns, python="hms_testing.jobtasks:slow_fan_out")
    await wait_until(lambda: lines(record), timeout=30, message="the first items done")
    await kv.put(specs.queue_pause_key(ns, "q"), b'{"paused_by": "test"}')
    # what was handed out before the pause finishes (one batch of 100 at most); then nothing
    await asyncio.sleep(4.0)
    held = len(lines(record))
    await asyncio.sleep(2.0)
    assert len(lines(record)) == held < 300
    assert outcomes(worker) == []
    await kv.delete(specs.queue_pause_key(ns, "q"))
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]
    assert sorted(lines(record)) == list(range(300))
    assert control in ("created", "unchanged")


async def test_a_run_awaiting_approval_starts_only_once_approved(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    worker = await start_worker(start_service, js)
    await ensure_bucket(js, specs.JOB_CONTROL)
    kv = await js.key_value(specs.JOB_CONTROL.bucket)
    ns = f"ns_{secrets.token_hex(3)}"
    run = await schedule(js, ns, python="builtins:print", approval=True, sla_minutes=300)

    async def announced() -> bool:
        return "awaiting_approval" in kinds(await run_events(js, ns))

    await wait_until(announced, timeout=20, message="the run announced as awaiting approval")
    await asyncio.sleep(3.0)  # longer than the ack wait: the run keeps its delivery, unstarted
    events = await run_events(js, ns)
    assert kinds(events) == ["awaiting_approval"]
    assert datetime.fromisoformat(events[0]["deadline"]) == run.deadline
    assert outcomes(worker) == []
    approval = {"run_id": run.run_id, "approved_by": "alice"}
    await kv.create(specs.approval_key(ns, run_key(ns, run.run_id)), json.dumps(approval).encode())
    await wait_until(lambda: outcomes(worker), timeout=20, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]
    assert kinds(await run_events(js, ns)) == ["awaiting_approval", "started", "completed"]
