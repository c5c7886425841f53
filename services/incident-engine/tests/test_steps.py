"""Every kind of playbook step against a real nats-server: requests on the bus (notify, ticket,
scale, pause and resume a queue), an approval by a responder (or its timeout), a webhook POST, a
registered python function (or one that is not), a dry run, the blast-radius limit, and alerts
grouped by labels into one incident."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hms_contracts import (
    IncidentOpened,
    IncidentStepRan,
    IncidentUpdated,
    QueueControlRequested,
    ScaleRequested,
    TicketFiled,
    specs,
)
from hms_contracts.bus import BusEvent
from hms_stack.natsserver import free_port
from hms_testing import NatsHandle, wait_until
from hms_testing.incidents import (
    NS,
    firing,
    incident_events,
    latency_rule,
    leading,
    request,
    rollback_playbook,
    wait_for_event,
)
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError


def ended(events: list[tuple[str, BusEvent]]) -> list[tuple[int, str]]:
    return [
        (e.step_index, e.status)
        for _, e in events
        if isinstance(e, IncidentStepRan) and e.status != "started"
    ]


def status_is(status: str) -> Any:
    return lambda s, e: isinstance(e, IncidentUpdated) and e.status == status


async def test_bus_requests_ticket_scale_and_queue_steps(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    received: list[dict[str, Any]] = []

    async def ticket_hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="filed")

    app = web.Application()
    app.router.add_post("/tickets", ticket_hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    playbook = rollback_playbook(
        "pause_queue ssa_re_score_q",
        "scale ssa_re_score 5",
        "ticket 'Rescore paused for {{job}}'",
        "resume_queue ssa_re_score_q",
        params={"job": {"type": "name"}},
    )
    try:
        async with leading(
            nats_server,
            tmp_path,
            [playbook, latency_rule()],
            ticket_webhook_url=f"http://127.0.0.1:{port}/tickets",
        ):
            kv = await js.key_value(specs.JOB_CONTROL.bucket)
            paused_by: list[dict[str, Any]] = []

            async def watch() -> None:  # the key the workers read, set then removed
                async for entry in await kv.watch(specs.queue_pause_key(NS, "ssa_re_score_q")):
                    if entry is not None and entry.value:
                        paused_by.append(json.loads(entry.value))

            watching = asyncio.create_task(watch())
            await send_firing(js, labels={"job": "ssa_re_score"})
            events = await wait_for_event(js, status_is("resolved"), "the playbook finished")
            watching.cancel()
            with pytest.raises(KeyNotFoundError):
                await kv.get(specs.queue_pause_key(NS, "ssa_re_score_q"))  # resumed
            await wait_until(lambda: received, message="the ticket webhook called")
    finally:
        await runner.cleanup()
    queue = [(e.queue, e.control) for _, e in events if isinstance(e, QueueControlRequested)]
    assert queue == [("ssa_re_score_q", "pause"), ("ssa_re_score_q", "resume")]
    [scale] = [e for _, e in events if isinstance(e, ScaleRequested)]
    assert (scale.pool, scale.replicas) == ("ssa_re_score", 5)
    [ticket] = [e for _, e in events if isinstance(e, TicketFiled)]
    assert ticket.summary == "Rescore paused for ssa_re_score"
    assert received[0]["ticket_id"] == ticket.ticket_id
    assert ended(events) == [(0, "succeeded"), (1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
    assert [p["paused_by"] for p in paused_by] == [
        f"playbook rollback step 0 of incident {ticket.incident_id}"
    ]


async def send_firing(js: JetStreamContext, **kw: Any) -> None:
    from hms_kit import publish

    await publish(js, firing(**kw))


async def test_an_approval_step_waits_for_a_responder(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    playbook = rollback_playbook("approve 'Roll back prod?'", "kubectl version")
    async with leading(nats_server, tmp_path, [playbook, latency_rule()], step_path="/nonexistent"):
        await send_firing(js)
        opened = await wait_for_event(js, lambda s, e: isinstance(e, IncidentOpened), "opened")
        iid = next(e for _, e in opened if isinstance(e, IncidentOpened)).incident_id

        async def waiting() -> bool:
            shown = await request(nc, "show", {"incident_id": iid})
            return any(s["status"] == "waiting" for s in shown["steps"])

        await wait_until(waiting, message="the approval waits")
        assert ended(await incident_events(js)) == []
        assert await request(nc, "approve", {"incident_id": iid, "actor": "alice"}) == {"step": 0}
        events = await wait_for_event(js, status_is("failed"), "the next step ran")
    # the approval let the next step run (which failed: no kubectl on its PATH)
    assert ended(events) == [(0, "succeeded"), (1, "failed")]


async def test_an_approval_nobody_gives_times_out(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    playbook = rollback_playbook({"action": "approval", "timeout_s": 0.5}, "kubectl version")
    async with leading(nats_server, tmp_path, [playbook, latency_rule()]):
        await send_firing(js)
        events = await wait_for_event(js, status_is("failed"), "the approval timed out")
    assert ended(events) == [(0, "timed_out")]


async def test_a_webhook_step_posts_the_incident(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    received: list[tuple[dict[str, Any], str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers.get("X-Token", "")))
        return web.Response(text="ok, token seen: " + request.headers.get("X-Token", ""))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    step = {
        "action": "webhook",
        "url": f"http://127.0.0.1:{port}/hook",
        "secret_headers": {"X-Token": "hook_token"},
    }
    try:
        async with leading(
            nats_server,
            tmp_path,
            [rollback_playbook(step), latency_rule()],
            secrets={"hook_token": "hunter2-secret"},
        ):
            await send_firing(js)
            events = await wait_for_event(js, status_is("resolved"), "the webhook step ran")
    finally:
        await runner.cleanup()
    body, token = received[0]
    assert token == "hunter2-secret"
    assert body["namespace"] == NS
    [result] = [e for _, e in events if isinstance(e, IncidentStepRan) and e.status != "started"]
    assert result.output == "ok, token seen: ********"


async def test_python_steps_run_only_when_registered(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    playbook = rollback_playbook(
        {"action": "python", "function": "platform:python_version", "timeout_s": 20},
        {"action": "python", "function": "os:system"},
    )
    async with leading(
        nats_server, tmp_path, [playbook, latency_rule()], python_steps=("platform:python_version",)
    ):
        await send_firing(js)
        events = await wait_for_event(js, status_is("failed"), "the unregistered step refused")
    results = [e for _, e in events if isinstance(e, IncidentStepRan) and e.status != "started"]
    assert [(e.step_index, e.status) for e in results] == [(0, "succeeded"), (1, "failed")]
    assert "not a registered python step" in results[1].output


async def test_a_dry_run_records_the_rendered_steps_and_runs_nothing(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    playbook = rollback_playbook(
        "touch {{file}}", params={"file": {"type": "name", "label": "marker"}}
    )
    marker = tmp_path / "made-by-a-step"
    async with leading(nats_server, tmp_path, [playbook, latency_rule()], dry_run=True):
        await send_firing(js, labels={"marker": str(marker).lstrip("/")})
        events = await wait_for_event(js, status_is("resolved"), "the dry run done")
    [step] = [e for _, e in events if isinstance(e, IncidentStepRan) and e.status != "started"]
    assert step.status == "dry_run"
    assert step.argv == ("touch", str(marker).lstrip("/"))
    assert not marker.exists()


async def test_the_blast_radius_limit_stops_runs_on_one_target(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    playbook = rollback_playbook(
        "true {{pod}}", params={"pod": {"type": "name"}}, max_runs_per_hour=2
    )
    async with leading(
        nats_server, tmp_path, [playbook, latency_rule()], step_path="/usr/bin:/bin"
    ):
        for n in range(3):
            # three different problems (fingerprints) on the same pod
            await send_firing(js, fingerprint=f"{n:016x}", labels={"pod": "api-1"})
        events = await wait_for_event(js, status_is("needs_attention"), "the third refused")
    assert len([e for _, e in events if isinstance(e, IncidentOpened)]) == 3
    refused = [
        e for _, e in events if isinstance(e, IncidentUpdated) and e.status == "needs_attention"
    ]
    assert len(refused) == 1
    assert "rate limit: 2 runs" in (refused[0].note or "")


async def test_alerts_sharing_the_grouping_labels_join_one_incident(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, [], group_by=("alertname", "service")):
        await send_firing(js, fingerprint="1" * 16, labels={"service": "api", "pod": "a"})
        await send_firing(js, fingerprint="2" * 16, labels={"service": "api", "pod": "b"})
        await send_firing(js, fingerprint="3" * 16, labels={"service": "web", "pod": "c"})

        async def two() -> list[dict[str, Any]] | None:
            rows: list[dict[str, Any]] = await request(nc, "list", {})
            return rows if len(rows) == 2 else None

        rows = await wait_until(two, message="two incidents")
        timelines = [
            json.dumps(await request(nc, "show", {"incident_id": r["incident_id"]})) for r in rows
        ]
    assert sum("joined" in t for t in timelines) == 1
