"""Fan-out against a real nats-server and the worker as a subprocess: a run's items are each
done exactly once, the run completes only when all are, with progress on the way; a failing
item is dead-lettered with its reason and fails the run; a command fans out through its items
file."""

from __future__ import annotations

import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import specs
from hms_contracts.config import Job
from hms_contracts.runs import RunScheduled
from hms_kit import ensure_stream, publish
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from hms_testing.deadletters import dead_letters
from hms_testing.jobtasks import FAIL_ITEM, ITEMS, RECORD
from hms_testing.runs import kinds, run_events
from hms_worker_pool.fanout import item_subject
from hms_worker_pool.store import OUTCOMES_FILE, read_items_done, read_outcomes
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow

PY = sys.executable


async def start_worker(
    start_service: ServiceLauncher, js: JetStreamContext, **extra: str
) -> ServiceProcess:
    await ensure_stream(js, specs.JOB_RUNS)
    env = {"ACK_WAIT_S": "5", "KILL_GRACE_S": "1", "CONCURRENCY": "2"}
    return await start_service(
        "hms_worker_pool",
        env={**{f"HMS_WORKER_POOL_{k}": v for k, v in env.items()}, **extra},
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


async def test_a_run_fanning_out_10000_items_does_each_exactly_once_then_completes(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    record = tmp_path / "done"
    worker = await start_worker(start_service, js, **{ITEMS: "10000", RECORD: str(record)})
    ns = f"ns_{secrets.token_hex(3)}"
    began = time.monotonic()
    run = await schedule(js, ns, python="hms_testing.jobtasks:fan_out")
    await wait_until(lambda: outcomes(worker), timeout=60, message="the run's outcome")
    elapsed = time.monotonic() - began
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]
    indices = [int(line) for line in record.read_text().split()]
    assert len(indices) == 10_000
    assert sorted(indices) == list(range(10_000))
    done = read_items_done(worker.state_dir / OUTCOMES_FILE)
    assert len(done) == 10_000
    events = await run_events(js, ns)
    assert kinds(events)[0] == "started"
    assert kinds(events)[-1] == "completed"
    assert events[-1]["items"] == 10_000
    progress = [e for e in events if e["subject"].endswith(".progressed")]
    assert progress
    assert progress[-1]["done"] == progress[-1]["total"] == 10_000
    assert [p["done"] for p in progress] == sorted({p["done"] for p in progress})
    # progress is rate-bounded: about one report a second, never one per item
    assert len(progress) <= elapsed + 2
    info = await js.stream_info(specs.JOB_ITEMS.name, subjects_filter=item_subject(run))
    assert info.state.subjects in (None, {})


async def test_a_failing_item_is_dead_lettered_with_its_reason_and_fails_the_run(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    record = tmp_path / "done"
    worker = await start_worker(
        start_service, js, **{ITEMS: "20", RECORD: str(record), FAIL_ITEM: "7"}
    )
    ns = f"ns_{secrets.token_hex(3)}"
    run = await schedule(js, ns, python="hms_testing.jobtasks:fan_out")
    [letter] = await dead_letters(js, item_subject(run), 1, timeout=30)
    assert letter.headers is not None
    assert "item 7 is poison" in letter.headers["Hms-Dlq-Reason"]
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    [(_, _, outcome, _)] = outcomes(worker)
    assert outcome == "dead_lettered"
    assert sorted(int(i) for i in record.read_text().split()) == [i for i in range(20) if i != 7]
    *_, gave_up = await run_events(js, ns)
    assert "1 of 20 work items dead-lettered" in gave_up["reason"]


async def test_a_command_fans_out_through_its_items_file(
    start_service: ServiceLauncher, js: JetStreamContext, tmp_path: Path
) -> None:
    worker = await start_worker(start_service, js)
    record = tmp_path / "items"
    script = (
        "import json, os\n"
        "if 'HMS_ITEM' in os.environ:\n"
        f"    open({str(record)!r}, 'a').write(os.environ['HMS_ITEM_INDEX'] + ' '"
        " + json.loads(os.environ['HMS_ITEM'])['file'] + '\\n')\n"
        "else:\n"
        "    with open(os.environ['HMS_ITEMS_FILE'], 'w') as out:\n"
        "        for i in range(5): out.write(json.dumps({'file': f'f{i}.csv'}) + '\\n')\n"
    )
    ns = f"ns_{secrets.token_hex(3)}"
    run = await schedule(js, ns, command=[PY, "-c", script])
    await wait_until(lambda: outcomes(worker), timeout=30, message="the run's outcome")
    assert outcomes(worker) == [(ns, run.run_id, "completed", 1)]
    lines = sorted(record.read_text().splitlines())
    assert lines == [f"{i} f{i}.csv" for i in range(5)]
    *_, completed = await run_events(js, ns)
    assert completed["items"] == 5


async def test_an_invalid_work_item_is_dead_lettered_at_once(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    await start_worker(start_service, js)
    ns = f"ns_{secrets.token_hex(3)}"
    subject = f"job.item.{ns}.q.{'0' * 24}"
    await js.publish(subject, b'{"index": -1}', headers={"Nats-Msg-Id": f"{ns}-poison"})
    [letter] = await dead_letters(js, subject, 1, timeout=20)
    assert letter.headers is not None
    assert letter.headers["Hms-Dlq-Deliveries"] == "1"
    assert "run_id: Field required" in letter.headers["Hms-Dlq-Reason"]
