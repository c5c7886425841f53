"""The documents' playbook against a real nats-server and a stand-in ``kubectl`` on PATH: one
incident and one run per problem, stop at the first failure, a hung step killed at its timeout,
label injection never run, secrets never shown, requests answered."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hms_contracts import (
    IncidentClosed,
    IncidentOpened,
    IncidentStepRan,
    IncidentUpdated,
    NotifyRequested,
    specs,
)
from hms_contracts.bus import BusEvent
from hms_contracts.config import Alert
from hms_testing import NatsHandle, wait_until
from hms_testing.incidents import (
    NS,
    STARTED,
    engine_of,
    firing,
    incident_events,
    invocations,
    latency_rule,
    leading,
    request,
    rollback_playbook,
    send,
    stand_in_kubectl,
    stream_events,
    wait_for_event,
)
from nats.aio.client import Client
from nats.js import JetStreamContext


def closed(s: str, e: object) -> bool:
    return isinstance(e, IncidentClosed)


E = TypeVar("E", bound=BusEvent)


def of(kind: type[E], events: Sequence[tuple[str, BusEvent]]) -> list[E]:
    return [e for _, e in events if isinstance(e, kind)]


async def test_the_documents_playbook_rolls_back_then_notifies_on_call(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    async with leading(nats_server, tmp_path, [rollback_playbook(), latency_rule()]):
        await send(js, firing())
        events = await wait_for_event(js, closed, "the incident closed")
    assert invocations(kubectl) == ["rollout undo deploy/benefits-api"]
    subjects = [s for s, _ in events]
    assert subjects[0] == f"ops.incident.{NS}.opened"
    assert f"ops.incident.{NS}.step" in subjects
    assert f"ops.incident.{NS}.notify" in subjects
    assert subjects[-1] == f"incident.closed.{NS}"
    [notify] = of(NotifyRequested, events)
    assert (notify.target, notify.message) == ("oncall", "Rollback complete")
    ended = [e for e in of(IncidentStepRan, events) if e.status != "started"]
    assert [(e.step_index, e.status, e.exit_code) for e in ended] == [
        (0, "succeeded", 0),
        (1, "succeeded", 0),
    ]
    assert "rolled back" in ended[0].output
    statuses = [e.status for e in of(IncidentUpdated, events)]
    assert statuses == ["mitigating", "resolved"]


async def test_the_same_alert_three_times_opens_one_incident_and_runs_once(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    alert = firing()
    objects = [rollback_playbook(), latency_rule()]
    # the incident stays open after its playbook, so the re-fires find it
    async with leading(
        nats_server, tmp_path, objects, resolve_on_playbook_success=False
    ) as service:
        # the same event delivered three times (JetStream would dedupe a re-publish within its
        # window by Nats-Msg-Id: bypass it, as a redelivery or a replay would)...
        for _ in range(3):
            await js.publish(alert.subject(), alert.model_dump_json().encode())
        # ... and the same problem firing again, twice, as new episodes (new events)
        later = [firing(started=STARTED + timedelta(minutes=m)) for m in (10, 20)]
        await send(js, *later)
        registry = service.metrics.registry

        def taken() -> dict[str, float | None]:
            return {
                outcome: registry.get_sample_value(
                    "hms_incident_engine_signals_total", {"outcome": outcome}
                )
                for outcome in ("opened", "duplicate", "refired")
            }

        await wait_until(
            lambda: taken() == {"opened": 1.0, "duplicate": 2.0, "refired": 2.0},
            message=f"every delivery taken: {taken()}",
        )
        await wait_for_event(
            js,
            lambda s, e: (
                isinstance(e, IncidentStepRan) and e.status == "succeeded" and e.step_index == 1
            ),
            "the playbook ran",
        )
        incidents = await engine_of(service).store.rows("SELECT * FROM incidents")
    assert len(incidents) == 1
    assert invocations(kubectl) == ["rollout undo deploy/benefits-api"]
    assert len(of(IncidentOpened, await incident_events(js))) == 1


async def test_the_first_failing_step_stops_the_playbook(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    playbook = rollback_playbook(
        "kubectl rollout undo deploy/fail-api",
        "kubectl rollout undo deploy/never-api",
        "notify oncall 'Rollback complete'",
    )
    async with leading(nats_server, tmp_path, [playbook, latency_rule()]):
        await send(js, firing())
        events = await wait_for_event(
            js,
            lambda s, e: isinstance(e, IncidentUpdated) and e.status == "failed",
            "the incident failed",
        )
    assert invocations(kubectl) == ["rollout undo deploy/fail-api"]
    ended = [e for e in of(IncidentStepRan, events) if e.status != "started"]
    assert [(e.step_index, e.status, e.exit_code) for e in ended] == [(0, "failed", 3)]
    assert "deployment not found" in ended[0].output
    assert not of(NotifyRequested, events)


async def test_a_hung_step_is_killed_at_its_timeout(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in_kubectl(tmp_path, monkeypatch)
    playbook = rollback_playbook(
        {"action": "run", "argv": ["kubectl", "rollout", "undo", "hang"], "timeout_s": 1.0}
    )
    async with leading(nats_server, tmp_path, [playbook, latency_rule()], kill_grace_s=0.5):
        await send(js, firing())
        events = await wait_for_event(
            js,
            lambda s, e: isinstance(e, IncidentStepRan) and e.status == "timed_out",
            "the step timed out",
        )
    [ended] = [e for e in of(IncidentStepRan, events) if e.status == "timed_out"]
    assert ended.exit_code is None
    assert 1.0 <= ended.duration_s < 10
    assert "killed after its timeout" in ended.output
    # the stand-in's `sleep 600` went with its process group
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p) == "sleep600"]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b"").decode()
    except OSError:
        return ""


@pytest.mark.parametrize(
    "pod",
    [
        "x; touch PWNED",
        "$(touch PWNED)",
        "`touch PWNED`",
        "--kubeconfig=/tmp/evil",
        "x\ntouch PWNED",
        "x && touch PWNED",
    ],
)
async def test_injection_through_a_label_never_runs(
    nats_server: NatsHandle,
    js: JetStreamContext,
    tmp_path: Path,
    pod: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    playbook = rollback_playbook(
        "kubectl rollout restart pod/{{pod}}", params={"pod": {"type": "name"}}
    )
    async with leading(nats_server, tmp_path, [playbook, latency_rule()]):
        await send(js, firing(labels={"pod": pod}))
        events = await wait_for_event(
            js,
            lambda s, e: isinstance(e, IncidentUpdated) and e.status == "needs_attention",
            "the run was refused",
        )
    assert invocations(kubectl) == []
    assert not list(tmp_path.rglob("PWNED"))
    [refused] = [e for e in of(IncidentUpdated, events) if e.status == "needs_attention"]
    assert "parameter 'pod'" in (refused.note or "")


async def test_a_valid_label_is_one_argument(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    playbook = rollback_playbook(
        "kubectl rollout restart pod/{{pod}}", params={"pod": {"type": "name"}}
    )
    async with leading(nats_server, tmp_path, [playbook, latency_rule()]):
        await send(js, firing(labels={"pod": "benefits-api-7d4b9"}))
        await wait_for_event(js, closed, "the incident closed")
    assert invocations(kubectl) == ["rollout restart pod/benefits-api-7d4b9"]


async def test_a_secret_never_appears_on_any_surface(
    nats_server: NatsHandle,
    js: JetStreamContext,
    nc: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    secret = "s3cr3t-token-4242"
    playbook = rollback_playbook(
        {
            "action": "run",
            "argv": ["kubectl", "--token={{secret.kube_token}}", "rollout", "undo", "x"],
        },
        {
            "action": "run",
            "argv": ["sh", "-c", "echo token is $TOKEN"],
            "secret_env": {"TOKEN": "kube_token"},
        },
        "notify oncall 'used {{secret.kube_token}}'",
    )
    async with leading(
        nats_server, tmp_path, [playbook, latency_rule()], secrets={"kube_token": secret}
    ) as service:
        await send(js, firing())
        await wait_for_event(js, closed, "the incident closed")
        iid = (await request(nc, "list", {"status": "all"}))[0]["incident_id"]
        shown = json.dumps(await request(nc, "show", {"incident_id": iid}))
        exported = json.dumps(await request(nc, "audit_export", {}))
        store_file = engine_of(service).store.path
    assert invocations(kubectl) == [f"--token={secret} rollout undo x"], "the step got the secret"
    surfaces = {
        "incident events": json.dumps(
            [e.model_dump(mode="json") for _, e in await incident_events(js)]
        ),
        "audit stream": json.dumps(
            [e.model_dump(mode="json") for _, e in await stream_events(js, specs.AUDIT.name)]
        ),
        "show": shown,
        "audit export": exported,
        "logs": caplog.text,
        "sqlite": "".join(
            p.read_bytes().decode(errors="replace") for p in store_file.parent.glob("incidents*")
        ),
    }
    for surface, text in surfaces.items():
        assert secret not in text, f"the secret shows in {surface}"
    assert "token is ********" in shown


async def test_a_long_steps_output_reaches_the_timeline_while_it_runs(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    playbook = rollback_playbook(
        {"action": "run", "argv": ["sh", "-c", "echo first; sleep 1.5; echo second; sleep 1"]}
    )
    async with leading(nats_server, tmp_path, [playbook, latency_rule()]):
        await send(js, firing())
        await wait_for_event(js, closed, "the incident closed")
        iid = (await request(nc, "list", {"status": "all"}))[0]["incident_id"]
        timeline = (await request(nc, "show", {"incident_id": iid}))["timeline"]
    kinds = [t["what"] for t in timeline]
    streamed = [t["text"] for t in timeline if t["what"] == "step_output"]
    assert streamed
    assert "first" in streamed[0]
    assert "second" not in streamed[0], "the first part came before the step went on"
    assert kinds.index("step_output") < kinds.index("step_ended")


async def test_the_documents_inline_playbook_on_the_alert_runs(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ops_setup.py: ``alert.set_playbook(Playbook.steps([...]))``, steps on the rule itself."""
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    rule = Alert.model_validate(
        {
            "namespace": NS,
            "name": "sla_latency_breach",
            "metric": "api.latency_p99",
            "condition": "> 1000",
            "window": "5m",
            "playbook": [
                "kubectl rollout undo deploy/benefits-api",
                "notify oncall 'Rollback complete'",
            ],
        }
    )
    async with leading(nats_server, tmp_path, [rule]):
        await send(js, firing(rule="sla_latency_breach"))
        events = await wait_for_event(js, closed, "the incident closed")
    assert invocations(kubectl) == ["rollout undo deploy/benefits-api"]
    [notify] = of(NotifyRequested, events)
    assert notify.playbook == "sla_latency_breach.inline"
