"""The worker-pool as a real subprocess against a real nats-server: a run completes once, a
failing run is retried then dead-lettered, a kill -9 mid-run leaves one completion, and SIGTERM
hands the run in hand back at once."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import specs, subjects
from hms_contracts.config import Job
from hms_contracts.runs import RunScheduled
from hms_kit import ensure_stream, publish
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from hms_testing.deadletters import dead_letters
from hms_testing.runs import kinds, run_events
from hms_worker_pool.store import OUTCOMES_FILE, read_outcomes
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow

PY = sys.executable


def fast_env(**extra: str) -> dict[str, str]:
    env = {"ACK_WAIT_S": "2", "KILL_GRACE_S": "1"}
    env |= {"CONCURRENCY": "2", **extra}
    return {f"HMS_WORKER_POOL_{k}": v for k, v in env.items()}


async def start_worker(
    start_service: ServiceLauncher, js: JetStreamContext, **extra: str
) -> ServiceProcess:
    # the scheduler owns the work queue; `hms-ops up` provisions it before any service starts
    await ensure_stream(js, specs.JOB_RUNS)
    return await start_service("hms_worker_pool", env=fast_env(**extra))


async def schedule(js: JetStreamContext, ns: str, **job: Any) -> RunScheduled:
    spec = Job.model_validate(
        {"namespace": ns, "name": "nightly", "schedule": "0 0 * * *", "queue": "q", **job}
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunScheduled.create(
        occurred_at=datetime.now(UTC),
        namespace=ns,
        job_id=spec.name,
        run_id=f"nightly@{at.isoformat().replace('+00:00', 'Z')}",
        queue=spec.queue,
        scheduled_at=at,
        task=spec.task(),
    )
    await publish(js, run)
    return run


def outcomes(proc: ServiceProcess) -> list[tuple[str, str, str, int]]:
    return read_outcomes(proc.state_dir / OUTCOMES_FILE)


def namespace() -> str:
    return f"ns_{secrets.token_hex(3)}"


async def test_a_run_whose_command_succeeds_starts_and_completes_once(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    run = await schedule(js, ns, command=[PY, "-c", "print('ok')"])
    await wait_until(lambda: outcomes(worker), timeout=20, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]
    events = await run_events(js, ns)
    assert kinds(events) == ["started", "completed"]
    assert events[0]["worker_id"] == worker.instance_id
    assert await worker.metric("hms_worker_runs_total") == 1


async def test_a_failing_run_is_retried_then_dead_lettered_once(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    run = await schedule(
        js, ns, command=[PY, "-c", "raise SystemExit(7)"], retries=2, backoff=["1s"]
    )
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "dead_lettered", 3)]
    events = await run_events(js, ns)
    assert kinds(events) == ["started", "failed"] * 3 + ["dead_lettered"]
    failed = [e for e in events if e["subject"].endswith(".failed")]
    assert [e["will_retry"] for e in failed] == [True, True, False]
    assert all("exited with 7" in e["error"] for e in failed)
    [letter] = await dead_letters(js, run.subject(), 1)
    assert b"nightly" in letter.data


async def test_a_worker_killed_mid_run_has_the_run_redelivered_and_completed_once(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    marker = tmp_path / "attempts"
    script = f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(1.5)"
    run = await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(marker.exists, timeout=20, message="the first attempt began")
    worker.kill()
    worker.spawn()
    await worker.wait_healthy()
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 2)]
    events = await run_events(js, ns)
    assert kinds(events).count("completed") == 1
    assert [e["attempt"] for e in events if e["subject"].endswith(".started")] == [1, 2]


async def test_sigterm_stops_the_run_in_hand_and_hands_it_back_at_once(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    # a long ack wait: only the nak on shutdown can bring the run back within the test
    worker = await start_worker(start_service, js, ACK_WAIT_S="60")
    ns = namespace()
    pidfile = tmp_path / "first.pid"
    script = (
        "import os, pathlib, time\n"
        f"p = pathlib.Path({str(pidfile)!r})\n"
        "if not p.exists():\n"
        "    p.write_text(str(os.getpid())); time.sleep(60)\n"
    )
    run = await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(pidfile.exists, timeout=20, message="the first attempt began")
    assert await worker.terminate(timeout=15) == 0
    first = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    assert outcomes(worker) == []
    second = await start_worker(start_service, js, ACK_WAIT_S="60")
    await wait_until(lambda: outcomes(second), timeout=15, message="the run's outcome")
    assert outcomes(second) == [(ns, run.run_id, "completed", 2)]


async def test_a_run_longer_than_the_ack_wait_keeps_its_delivery_and_runs_once(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js)  # ack wait 2 s
    ns = namespace()
    marker = tmp_path / "attempts"
    script = f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(5)"
    run = await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]
    assert marker.read_text() == "x"


async def test_a_redelivered_run_that_already_ended_is_acked_without_running(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    marker = tmp_path / "attempts"
    run = await schedule(js, ns, command=[PY, "-c", f"open({str(marker)!r}, 'a').write('x')"])
    await wait_until(lambda: outcomes(worker), timeout=20, message="the run's outcome")
    # the same run again, past JetStream's dedupe (as after a crash between record and ack)
    again = await js.publish(
        run.subject(), run.model_dump_json().encode(), headers={"Nats-Msg-Id": "again"}
    )

    async def acked() -> bool:
        info = await js.consumer_info(specs.JOB_RUNS.name, specs.WORKER_RUNS.durable)
        return info.ack_floor is not None and int(info.ack_floor.stream_seq or 0) >= again.seq

    await wait_until(acked, timeout=20, message="the second delivery acked")
    assert marker.read_text() == "x"
    assert kinds(await run_events(js, ns)) == ["started", "completed"]
    # one completion, one redelivery recognised as already ended
    assert await worker.metric("hms_worker_runs_total") == 2


async def test_an_invalid_work_item_is_dead_lettered_and_the_next_run_still_completes(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    poison = subjects.JOB_RUN.subject(ns, "q")
    await js.publish(poison, b'{"not": "a run"}', headers={"Nats-Msg-Id": f"{ns}-poison"})
    [letter] = await dead_letters(js, poison, 1)
    assert letter.data == b'{"not": "a run"}'
    run = await schedule(js, ns, python="builtins:print")
    await wait_until(lambda: outcomes(worker), timeout=20, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]


async def test_an_image_run_is_dead_lettered_for_want_of_a_container_engine(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    run = await schedule(js, ns, image="usgov/ssa-worker:v1")
    await wait_until(lambda: outcomes(worker), timeout=20, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "dead_lettered", 1)]
    [*_, gave_up] = await run_events(js, ns)
    assert "no container engine configured" in gave_up["reason"]


async def test_one_process_works_as_many_runs_at_once_as_its_concurrency(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js, CONCURRENCY="2")
    started = tmp_path / "started"
    started.mkdir()
    # each run waits until both have started: they finish only if they run side by side
    script = (
        "import os, pathlib, sys, time\n"
        f"d = pathlib.Path({str(started)!r})\n"
        "(d / os.environ['HMS_NAMESPACE']).touch()\n"
        "end = time.monotonic() + 10\n"
        "while len(list(d.iterdir())) < 2:\n"
        "    if time.monotonic() > end: sys.exit(1)\n"
        "    time.sleep(0.05)\n"
    )
    first, second = namespace(), namespace()
    for ns in (first, second):
        await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(lambda: len(outcomes(worker)) == 2, timeout=20, message="both outcomes")
    assert {o[2] for o in outcomes(worker)} == {"completed"}


async def test_a_worker_killed_mid_run_has_its_orphaned_command_killed_on_restart(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js)
    ns = namespace()
    pids = tmp_path / "pids"
    pids.mkdir()
    script = (
        "import os, pathlib, time\n"
        f"d = pathlib.Path({str(pids)!r})\n"
        "first = not any(d.iterdir())\n"
        "(d / str(os.getpid())).touch()\n"
        "if first: time.sleep(120)\n"
    )
    run = await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(lambda: any(pids.iterdir()), timeout=20, message="the first attempt began")
    [orphan] = [int(p.name) for p in pids.iterdir()]
    worker.kill()  # kill -9: the command, in its own process group, outlives it
    os.kill(orphan, 0)
    worker.spawn()
    await worker.wait_healthy()

    def gone() -> bool:
        try:
            os.kill(orphan, 0)
        except ProcessLookupError:
            return True
        return False

    await wait_until(gone, timeout=20, message="the orphaned command killed")
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 2)]


async def test_a_worker_frozen_past_the_ack_wait_loses_the_run_and_its_late_end_is_fenced(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    frozen = await start_worker(start_service, js)  # ack wait 2 s
    ns = namespace()
    marker = tmp_path / "attempts"
    script = f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(3)"
    run = await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(marker.exists, timeout=20, message="the first attempt began")
    os.kill(frozen.pid, signal.SIGSTOP)  # no more in_progress: the delivery lapses
    try:
        other = await start_worker(start_service, js)
        await wait_until(lambda: outcomes(other), timeout=30, message="the other's outcome")
        assert outcomes(other) == [(ns, run.run_id, "completed", 2)]
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    # the frozen worker wakes, finds its command ended and reports it: a duplicate id
    await wait_until(lambda: outcomes(frozen), timeout=30, message="the late end")
    events = await run_events(js, ns)
    assert kinds(events).count("completed") == 1
    assert [e["attempt"] for e in events if e["subject"].endswith(".started")] == [1, 2]
    info = await js.consumer_info(specs.JOB_RUNS.name, specs.WORKER_RUNS.durable)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
