"""``hms-ops dlq list|show|replay`` against a provisioned stack: a work item the kit
dead-lettered is listed with its reason, shown with its body, and replayed onto its subject,
the replay recorded in the namespace's audit chain with who did it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import AuditRecorded, RunScheduled, WorkItemBatch, run_id_for, specs, subjects
from hms_kit.deadletter import dead_letter
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect, read_credentials, read_stack_file
from hms_testing.stacks import hms_ops_in, provisioned_state

NS = "ssa"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatePaths]:
    with provisioned_state(Path(tmp_path_factory.mktemp("dlq")) / "state") as paths:
        yield paths


def on_stack(paths: StatePaths, work: Any) -> Any:
    async def go() -> Any:
        stack = read_stack_file(paths)
        assert stack is not None
        nc = await admin_connect(stack["nats_url"], read_credentials(paths)[ADMIN_USER])
        try:
            return await work(nc)
        finally:
            await nc.close()

    return asyncio.run(go())


def an_item() -> WorkItemBatch:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunScheduled.create(
        occurred_at=at,
        namespace=NS,
        job_id="ssa_re_score",
        run_id=run_id_for("ssa_re_score", at),
        queue="ssa_re_score_q",
        scheduled_at=at,
    )
    return WorkItemBatch.create(
        occurred_at=at,
        namespace=NS,
        job_id=run.job_id,
        run_id=run.run_id,
        queue=run.queue,
        first=7,
        payloads=[{"files": ["a.csv"]}],
        task={"python": "m:f"},
    )


def dead_letter_an_item(paths: StatePaths, item: WorkItemBatch) -> None:
    """Store the item on its subject, take it with a consumer, dead-letter it as a worker does."""

    async def work(nc: Any) -> None:
        js = nc.jetstream()
        await js.publish(item.subject(), item.model_dump_json().encode())
        sub = await js.pull_subscribe_bind(specs.WORKER_ITEMS.durable, specs.JOB_ITEMS.name)
        [msg] = await sub.fetch(1, timeout=5)
        await dead_letter(nc, msg, "item 7 failed 3 attempt(s): boom")
        await sub.unsubscribe()

    on_stack(paths, work)


def test_a_dead_letter_is_listed_shown_and_replayed_with_an_audit_record(
    stack: StatePaths,
) -> None:
    item = an_item()
    dead_letter_an_item(stack, item)

    listed = json.loads(hms_ops_in(stack, "dlq", "list", "--json").stdout)
    [row] = [r for r in listed if r["subject"] == item.subject()]
    assert row["reason"] == "item 7 failed 3 attempt(s): boom"
    assert row["stream"] == specs.JOB_ITEMS.name
    assert row["deliveries"] == "1"

    shown = json.loads(hms_ops_in(stack, "dlq", "show", str(row["seq"]), "--json").stdout)
    assert shown["body"]["payloads"] == [{"files": ["a.csv"]}]

    env_actor = os.environ.get("HMS_ACTOR")
    os.environ["HMS_ACTOR"] = "alice"
    try:
        done = hms_ops_in(stack, "dlq", "replay", str(row["seq"]))
    finally:
        if env_actor is None:
            del os.environ["HMS_ACTOR"]
        else:
            os.environ["HMS_ACTOR"] = env_actor
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == f"{row['seq']} replayed to {item.subject()} by alice (as hms-admin)"
    )

    async def after(nc: Any) -> tuple[int, int, AuditRecorded]:
        js = nc.jetstream()
        back = await js.stream_info(specs.JOB_ITEMS.name, subjects_filter=item.subject())
        gone = await js.stream_info(specs.DLQ.name, subjects_filter=subjects.dlq(item.subject()))
        audit = await js.get_last_msg(specs.AUDIT.name, subjects.AUDIT.subject(NS, "recorded"))
        return (
            (back.state.subjects or {}).get(item.subject(), 0),
            (gone.state.subjects or {}).get(subjects.dlq(item.subject()), 0),
            AuditRecorded.model_validate_json(audit.data or b""),
        )

    on_item_subject, in_dlq, record = on_stack(stack, after)
    assert (on_item_subject, in_dlq) == (1, 0)
    assert record.actor == "alice (as hms-admin)"
    assert record.action == "dlq.replay"
    assert record.target == item.subject()
    assert record.detail["dlq_seq"] == str(row["seq"])
    assert "boom" in record.detail["reason"]


def test_showing_or_replaying_a_missing_dead_letter_says_so(stack: StatePaths) -> None:
    for verb in ("show", "replay"):
        done = hms_ops_in(stack, "dlq", verb, "999999")
        assert done.returncode == 1
        assert "no dead letter with sequence 999999" in done.stderr
