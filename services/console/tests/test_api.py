"""The API against a real nats-server: commands go out as requests with the caller's identity
(503 when nobody answers), each audited in a chain that verifies; incidents published on the
bus show with their timeline; config is written for authors through the registry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from hms_console.app import create_service
from hms_console.core.policy import Principal
from hms_console.testing import Responder, Running, make_tokens
from hms_contracts import IncidentOpened, IncidentStepRan, IncidentUpdated, specs
from hms_testing import NatsHandle, running, wait_until
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .conftest import StartConsole, provision_all, settings_for


def opened(ns: str, incident_id: str = "inc-42") -> IncidentOpened:
    return IncidentOpened.create(
        namespace=ns,
        occurred_at=datetime.now(UTC),
        incident_id=incident_id,
        title="p99 latency above 1000 ms",
        severity="critical",
        cause="alert",
        playbook="rollback",
    )


async def publish(js: JetStreamContext, event: object) -> None:
    await js.publish(
        event.subject(),  # type: ignore[attr-defined]
        event.model_dump_json().encode(),  # type: ignore[attr-defined]
        headers={"Nats-Msg-Id": event.event_id},  # type: ignore[attr-defined]
    )


async def test_an_incident_on_the_bus_shows_with_its_timeline(
    console: Running, js: JetStreamContext
) -> None:
    await publish(js, opened(console.ns))
    await publish(
        js,
        IncidentUpdated.create(
            namespace=console.ns,
            occurred_at=datetime.now(UTC),
            incident_id="inc-42",
            revision=1,
            status="mitigating",
            severity="critical",
            actor="incident-engine",
            note="playbook rollback started",
        ),
    )
    await publish(
        js,
        IncidentStepRan.create(
            namespace=console.ns,
            occurred_at=datetime.now(UTC),
            incident_id="inc-42",
            playbook="rollback",
            step_index=0,
            argv=("kubectl", "rollout", "undo", "deploy/benefits-api"),
            status="succeeded",
            exit_code=0,
            output="deployment.apps/benefits-api rolled back",
            duration_s=1.5,
        ),
    )
    async with console.client("viewer") as http:

        async def detail() -> dict[str, object] | None:
            r = await http.get(f"/api/v1/namespaces/{console.ns}/incidents/inc-42")
            body: dict[str, object] = r.json()
            return body if r.status_code == 200 and len(body["timeline"]) == 3 else None  # type: ignore[arg-type]

        found = await wait_until(detail, timeout=20, message="the incident's timeline")
        assert found["status_text"] == "PLAYBOOK ROLLBACK RUNNING"
        timeline = found["timeline"]
        assert isinstance(timeline, list)
        assert timeline[2]["output"] == "deployment.apps/benefits-api rolled back"
        listed = (await http.get(f"/api/v1/namespaces/{console.ns}/incidents")).json()
        assert [i["incident_id"] for i in listed] == ["inc-42"]
        # another namespace's viewer sees none of it
    async with console.client("other_admin") as http:
        r = await http.get(f"/api/v1/namespaces/{console.ns}/incidents/inc-42")
        assert r.status_code == 403


async def test_ack_goes_out_as_a_request_with_the_callers_identity(
    console: Running, responder: Responder
) -> None:
    async with console.client("responder") as http:
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/incidents/inc-42/ack", json={"note": "on it"}
        )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    [request] = responder.seen
    assert request.command == "incident_ack"
    assert request.target == "inc-42"
    assert request.actor == "token:responder"
    assert request.role == "responder"
    assert request.args == {"note": "on it"}
    assert request.subject() == f"ops.request.{console.ns}.incident_ack"


async def test_a_refused_command_passes_the_owners_status(
    console: Running, responder: Responder
) -> None:
    responder.refuse = 409
    async with console.client("responder") as http:
        r = await http.post(f"/api/v1/namespaces/{console.ns}/incidents/inc-9/resolve")
    assert r.status_code == 409
    assert "refused" in r.json()["error"]


async def test_a_command_nobody_answers_is_503_and_changes_nothing(console: Running) -> None:
    async with console.client("responder") as http:
        r = await http.post(f"/api/v1/namespaces/{console.ns}/incidents/inc-42/approve")
    assert r.status_code == 503
    assert "nobody answers ops.request." in r.json()["error"]


async def test_every_change_is_audited_in_a_chain_that_verifies(
    console: Running, responder: Responder
) -> None:
    async with console.client("responder") as http:
        for action in ("ack", "resolve"):
            r = await http.post(f"/api/v1/namespaces/{console.ns}/incidents/inc-1/{action}")
            assert r.status_code == 200
    async with console.client("admin") as http:
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/silences",
            json={"rule_id": "sla_latency_breach", "for": "1h", "reason": "maintenance"},
        )
        assert r.status_code == 200
        verified = (await http.get(f"/api/v1/namespaces/{console.ns}/audit/verify")).json()
    assert verified["ok"] is True
    assert verified["records"] == 3


async def test_authors_write_config_through_the_registry_and_bad_fields_are_named(
    console: Running,
) -> None:
    path = f"/api/v1/namespaces/{console.ns}/config/metric/api.latency_p99"
    async with console.client("author") as http:
        bad = await http.put(path, json={"unit": "ms", "source": "x", "scrape_interval": "soon"})
        assert bad.status_code == 422
        assert "scrape_interval" in bad.json()["error"]
        r = await http.put(path, json={"unit": "ms", "source": "https://benefits.gov/api"})
        assert r.status_code == 200, r.text
        assert r.json()["action"] == "created"
        got = (await http.get(path)).json()
        assert got["object"]["unit"] == "ms"
        assert got["author"] == "token:author"
    async with console.client("viewer") as http:
        assert (await http.put(path, json={"unit": "s", "source": "x"})).status_code == 403


async def test_a_command_nobody_answers_in_time_is_504(
    start_console: StartConsole, nc: Client
) -> None:
    async def silent(msg: Msg) -> None:
        return None  # takes the request, never answers

    sub = await nc.subscribe("ops.request.*.>", cb=silent)
    await nc.flush()
    async with start_console(command_timeout_s=0.5) as console:
        async with console.client("responder") as http:
            r = await http.post(f"/api/v1/namespaces/{console.ns}/incidents/inc-1/ack")
        assert r.status_code == 504
        assert "no answer" in r.json()["error"]
    await sub.unsubscribe()


async def test_the_on_call_responder_may_override(
    nats_server: NatsHandle, tmp_path: Path, responder: Responder
) -> None:
    class ResponderOnCall:
        async def is_on_call(self, principal: Principal, namespace: str, now: datetime) -> bool:
            return principal.name == "responder"

    service = create_service(settings_for(nats_server, tmp_path), on_call=ResponderOnCall())
    await provision_all(nats_server)
    async with running(service):
        web = service.broker.context.get("web")
        await asyncio.wait_for(web.ready.wait(), 20)
        tokens = await make_tokens(service.js)
        console = Running(service, web.console, web.url, tokens)
        path = f"/api/v1/namespaces/{console.ns}/queues/claims_q/pause"
        async with console.client("responder") as http:
            assert (await http.post(path)).status_code == 200
        async with console.client("author") as http:
            assert (await http.post(path)).status_code == 403
        kv = await service.js.key_value(specs.JOB_CONTROL.bucket)
        entry = await kv.get(specs.queue_pause_key(console.ns, "claims_q"))
        assert json.loads(entry.value or b"{}")["paused_by"] == "token:responder"
    assert responder.seen == []  # a pause is the worker pool's key, not a request


async def test_dead_letters_and_queue_depth_are_listed(
    console: Running, js: JetStreamContext
) -> None:
    await js.publish(f"dlq.job.run.{console.ns}.claims_q", b"poison", headers={"reason": "bad"})
    await js.publish("dlq.job.run.ssa.other_q", b"not ours")
    for i in range(3):
        await js.publish(f"job.run.{console.ns}.claims_q", f"{i}".encode())
    async with console.client("viewer") as http:
        dead = (await http.get(f"/api/v1/namespaces/{console.ns}/dead-letters")).json()
        assert [d["original_subject"] for d in dead] == [f"job.run.{console.ns}.claims_q"]
        assert dead[0]["body"] == "poison"
        queues = (await http.get(f"/api/v1/namespaces/{console.ns}/queues")).json()
        assert [(q["queue"], q["depth"]) for q in queues] == [("claims_q", 3)]
