"""``hms-ops jobs ...``: the documents' job file applies as it is; the schedule is read with the
scheduler's rules; pause, resume and run-now go through the registry and the work queue."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import (
    AuditRecorded,
    RunCompleted,
    RunScheduled,
    RunStarted,
    run_id_for,
    run_key,
    specs,
    subjects,
)
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect, read_credentials, read_stack_file
from hms_testing.stacks import hms_ops_in, provisioned_state
from nats.js.errors import KeyDeletedError, KeyNotFoundError

#: the design documents' ``jobs/ssa_re-score.yaml``, verbatim
DOCUMENTS_JOB = """\
id: ssa_re_score
schedule: "0 0 * * *"      # every midnight UTC
queue: ssa_re_score_q
sla_minutes: 300           # must finish in 5 h
image: usgov/ssa-worker:v1
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatePaths]:
    with provisioned_state(Path(tmp_path_factory.mktemp("jobs")) / "state") as paths:
        yield paths


@pytest.fixture(scope="module")
def applied(stack: StatePaths, tmp_path_factory: pytest.TempPathFactory) -> StatePaths:
    folder = tmp_path_factory.mktemp("files") / "jobs"
    folder.mkdir()
    (folder / "ssa_re-score.yaml").write_text(DOCUMENTS_JOB)
    done = hms_ops_in(stack, "jobs", "apply", "-f", str(folder / "ssa_re-score.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "default.job.ssa_re_score created (generation 1)"
    return stack


def test_the_documents_job_file_applies_as_it_is_and_again_writes_nothing(
    applied: StatePaths, tmp_path: Path
) -> None:
    path = tmp_path / "ssa_re-score.yaml"
    path.write_text(DOCUMENTS_JOB)
    again = hms_ops_in(applied, "jobs", "apply", "-f", str(path))
    assert again.stdout.strip() == "default.job.ssa_re_score unchanged (generation 1)"


def test_a_bad_schedule_is_refused_with_the_line_and_nothing_written(
    applied: StatePaths, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DOCUMENTS_JOB.replace("0 0 * * *", "61 0 * * *").replace("ssa_re", "bad"))
    done = hms_ops_in(applied, "jobs", "apply", "-f", str(path))
    assert done.returncode == 1
    assert f"{path}:2: job 'bad_score' field schedule:" in done.stderr
    listed = json.loads(hms_ops_in(applied, "jobs", "list", "--json").stdout)
    assert [j["id"] for j in listed] == ["ssa_re_score"]


def test_next_fires_follow_the_schedule_in_its_zone_and_in_utc(applied: StatePaths) -> None:
    done = hms_ops_in(applied, "jobs", "next", "ssa_re_score", "-n", "default", "--count", "3")
    fires = [
        datetime.fromisoformat(r["utc"])
        for r in json.loads(
            hms_ops_in(
                applied, "jobs", "next", "ssa_re_score", "-n", "default", "--count", "3", "--json"
            ).stdout
        )
    ]
    assert done.returncode == 0
    assert [f.time() for f in fires] == [datetime.min.time()] * 3
    assert [b - a for a, b in itertools.pairwise(fires)] == [timedelta(days=1)] * 2
    assert fires[0] > datetime.now(UTC)


def test_pause_and_resume_are_versioned_changes_of_the_job(applied: StatePaths) -> None:
    paused = hms_ops_in(applied, "jobs", "pause", "ssa_re_score", "-n", "default")
    assert paused.stdout.strip() == "default.job.ssa_re_score paused (updated)"
    [row] = json.loads(hms_ops_in(applied, "jobs", "list", "--json").stdout)
    assert (row["paused"], row["next_utc"]) == (True, None)
    resumed = hms_ops_in(applied, "jobs", "resume", "ssa_re_score", "-n", "default")
    assert resumed.stdout.strip() == "default.job.ssa_re_score resumed (updated)"
    history = hms_ops_in(applied, "history", "job", "ssa_re_score", "-n", "default", "-o", "json")
    assert [v["generation"] for v in json.loads(history.stdout)][-2:] == [2, 3]


def test_run_now_enqueues_one_run_for_the_minute(applied: StatePaths) -> None:
    first = hms_ops_in(applied, "jobs", "run-now", "ssa_re_score", "-n", "default")
    second = hms_ops_in(applied, "jobs", "run-now", "ssa_re_score", "-n", "default")
    assert first.stdout.strip().endswith(" enqueued"), first.stderr
    run_id = first.stdout.split()[0]
    # the same minute (or, at a minute's edge, the next): never two runs for one minute
    assert second.stdout.split()[0] != run_id or "already enqueued" in second.stdout

    async def runs() -> list[RunScheduled]:
        stack = read_stack_file(applied) or {}
        nc = await admin_connect(stack["nats_url"], read_credentials(applied)[ADMIN_USER])
        try:
            js = nc.jetstream()
            info = await js.stream_info(specs.JOB_RUNS.name)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(specs.JOB_RUNS.name, seq)
                found.append(RunScheduled.model_validate_json(msg.data or b""))
            return found
        finally:
            await nc.close()

    enqueued = asyncio.run(runs())
    assert run_id in [r.run_id for r in enqueued]
    assert len({r.run_id for r in enqueued}) == len(enqueued)
    run = next(r for r in enqueued if r.run_id == run_id)
    assert run.task["image"] == "usgov/ssa-worker:v1"
    assert run.deadline == run.scheduled_at + timedelta(minutes=300)


def test_jobs_apply_takes_jobs_only(stack: StatePaths, tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(DOCUMENTS_JOB + "---\nkind: metric\nname: api.latency_p99\n")
    done = hms_ops_in(stack, "jobs", "apply", "-f", str(path), "--check")
    assert done.returncode == 1
    assert f"{path}:7: metric" in done.stderr


def on_stack(paths: StatePaths, work: Any) -> Any:
    async def go() -> Any:
        stack = read_stack_file(paths) or {}
        nc = await admin_connect(stack["nats_url"], read_credentials(paths)[ADMIN_USER])
        try:
            return await work(nc)
        finally:
            await nc.close()

    return asyncio.run(go())


async def last_audit(nc: Any, namespace: str) -> AuditRecorded:
    msg = await nc.jetstream().get_last_msg(
        specs.AUDIT.name, subjects.AUDIT.subject(namespace, "recorded")
    )
    return AuditRecorded.model_validate_json(msg.data or b"")


async def control_key(nc: Any, key: str) -> bool:
    kv = await nc.jetstream().key_value(specs.JOB_CONTROL.bucket)
    try:
        await kv.get(key)
    except (KeyNotFoundError, KeyDeletedError):
        return False
    return True


def test_a_queue_is_paused_and_resumed_with_an_audit_record_of_who(stack: StatePaths) -> None:
    key = specs.queue_pause_key("default", "ssa_re_score_q")
    args = ("queues", "pause", "ssa_re_score_q", "-n", "default", "--json")
    first = json.loads(hms_ops_in(stack, *args).stdout)
    again = json.loads(hms_ops_in(stack, *args).stdout)
    assert (first["paused"], first["changed"], again["changed"]) == (True, True, False)
    assert on_stack(stack, lambda nc: control_key(nc, key))
    record = on_stack(stack, lambda nc: last_audit(nc, "default"))
    assert (record.action, record.target) == ("queue.pause", "default.ssa_re_score_q")
    assert record.actor.endswith(f"(as {ADMIN_USER})")
    resumed = hms_ops_in(stack, "queues", "resume", "ssa_re_score_q", "-n", "default")
    assert resumed.stdout.strip() == "default.ssa_re_score_q resumed"
    assert not on_stack(stack, lambda nc: control_key(nc, key))
    bad = hms_ops_in(stack, "queues", "pause", "no.such", "-n", "default")
    assert bad.returncode == 1
    assert "queue 'no.such' must be a single subject token" in bad.stderr


def test_a_run_is_approved_once_and_the_approval_audited(stack: StatePaths) -> None:
    run_id = "ssa_re_score@2026-01-02T00:00:00Z"
    args = ("jobs", "approve", run_id, "-n", "default", "--json")
    first = json.loads(hms_ops_in(stack, *args).stdout)
    again = json.loads(hms_ops_in(stack, *args).stdout)
    assert (first["changed"], again["changed"]) == (True, False)
    key = specs.approval_key("default", run_key("default", run_id))
    assert on_stack(stack, lambda nc: control_key(nc, key))
    record = on_stack(stack, lambda nc: last_audit(nc, "default"))
    assert (record.action, record.target) == ("run.approve", run_id)
    bad = hms_ops_in(stack, "jobs", "approve", "not-a-run", "-n", "default")
    assert bad.returncode == 2
    assert "must look like <job_id>@<scheduled_at_utc>" in bad.stderr


def test_backfill_enqueues_each_slot_once_and_history_shows_the_runs(applied: StatePaths) -> None:
    window = ("--from", "2026-03-01T00:00:00Z", "--to", "2026-03-03T00:00:00Z", "--json")
    first = hms_ops_in(applied, "jobs", "backfill", "ssa_re_score", "-n", "default", *window)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert done["enqueued"] == [f"ssa_re_score@{d}T00:00:00Z" for d in days]
    again = json.loads(
        hms_ops_in(applied, "jobs", "backfill", "ssa_re_score", "-n", "default", *window).stdout
    )
    assert again["enqueued"] == []

    # a worker's events for the first of them, as the worker-pool publishes them
    at = datetime(2026, 3, 1, tzinfo=UTC)
    facts = {"namespace": "default", "job_id": "ssa_re_score", "queue": "ssa_re_score_q"}
    facts["run_id"] = run_id_for("ssa_re_score", at)
    events = [
        RunStarted.create(occurred_at=at, worker_id="w1", attempt=1, **facts),
        RunCompleted.create(occurred_at=at, items=1, duration_s=2.0, **facts),
    ]

    async def publish(nc: Any) -> None:
        for event in events:
            await nc.jetstream().publish(event.subject(), event.model_dump_json().encode())

    on_stack(applied, publish)
    rows = json.loads(
        hms_ops_in(applied, "jobs", "history", "ssa_re_score", "-n", "default", "--json").stdout
    )
    [row] = [r for r in rows if r["run_id"] == facts["run_id"]]
    assert (row["state"], row["attempts"], row["worker"]) == ("completed", 1, "w1")
    later = ("--from", "2026-03-01T00:00:00Z", "--to", "2026-03-01T00:00:00Z", "--json")
    skipped = json.loads(
        hms_ops_in(applied, "jobs", "backfill", "ssa_re_score", "-n", "default", *later).stdout
    )
    assert skipped["skipped_completed"] == [facts["run_id"]]
    [listed] = json.loads(hms_ops_in(applied, "jobs", "list", "--json").stdout)
    assert (listed["last_run"], listed["last_outcome"]) == (facts["run_id"], "completed")
    assert listed["sla_state"] == "met"  # completed at its slot, five hours before its deadline
