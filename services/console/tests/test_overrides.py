"""The console's buttons against the real parts that do the work: the incident engine answers
acknowledge / resolve / approve (and refuses a playbook run by hand); silences are config
objects the person authors; a queue pause is the workers' key; a dead letter is replayed as
``hms-ops dlq replay`` does; a long metric range is asked of the metrics-collector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hms_console.testing import Running
from hms_contracts import MetricSample, MetricSampleBatch, specs
from hms_contracts.config import Silence
from hms_kit import publish
from hms_metrics_collector.app import create_service as create_collector
from hms_metrics_collector.settings import MetricsCollectorSettings
from hms_testing import NatsHandle, running, wait_until
from hms_testing.incidents import firing, leading
from hms_testing.incidents import send as send_events
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError

from .conftest import StartConsole
from .test_web import csrf_in


async def audit_actions(js: JetStreamContext, ns: str) -> list[tuple[str, str]]:
    found = []
    info = await js.stream_info(specs.AUDIT.name)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(specs.AUDIT.name, seq)
        except NotFoundError:
            continue
        body = json.loads(msg.data or b"{}")
        if body.get("namespace") == ns:
            found.append((body["actor"], body["action"]))
    return found


async def test_the_incident_buttons_work_against_the_real_incident_engine(
    console: Running, nats_server: NatsHandle, tmp_path: Path, js: JetStreamContext
) -> None:
    ns = console.ns
    async with leading(nats_server, tmp_path / "engine", [], close_on_resolve=False):
        await send_events(js, firing())
        async with console.client("responder") as http:

            async def listed() -> list[dict[str, Any]] | None:
                r = await http.get(f"/api/v1/namespaces/{ns}/incidents")
                return r.json() or None

            [incident] = await wait_until(listed, timeout=20, message="the incident, live")
            iid = incident["incident_id"]
        async with console.client() as browser:  # the page's button, as a person clicks it
            form = await browser.get("/login")
            login = {"csrf_token": csrf_in(form.text), "token": console.tokens["responder"]}
            assert (await browser.post("/login", data=login)).status_code == 303
            page = await browser.get(f"/dashboard/{ns}/incidents/{iid}")
            assert f"/dashboard/{ns}/incidents/{iid}/ack" in page.text
            clicked = await browser.post(
                f"/dashboard/{ns}/incidents/{iid}/ack", data={"csrf_token": csrf_in(page.text)}
            )
            assert clicked.status_code == 303
            assert "nobody answers" not in clicked.headers["location"]
        async with console.client("responder") as http:
            missing = await http.post(f"/api/v1/namespaces/{ns}/incidents/inc-nope/ack")
            assert missing.status_code == 404

            async def acknowledged() -> bool:
                r = await http.get(f"/api/v1/namespaces/{ns}/incidents/{iid}")
                return bool(r.json()["status"] == "acknowledged")

            await wait_until(acknowledged, timeout=20, message="the engine's update, shown")
            done = await http.post(
                f"/api/v1/namespaces/{ns}/incidents/{iid}/resolve", json={"note": "rolled back"}
            )
            assert done.status_code == 200, done.text

            async def closed() -> dict[str, Any] | None:
                r = (await http.get(f"/api/v1/namespaces/{ns}/incidents/{iid}")).json()
                return r if r["closed_at"] else None

            shown = await wait_until(closed, timeout=20, message="the incident closed")
            assert "by token:responder" in json.dumps(shown["timeline"])
        async with console.client("admin") as http:
            by_hand = await http.post(f"/api/v1/namespaces/{ns}/playbooks/rollback/run")
            assert by_hand.status_code == 501
    assert ("token:responder", "console.incident_ack") in await audit_actions(js, ns)


async def test_a_silence_is_a_config_object_the_person_authors_and_expires(
    console: Running, js: JetStreamContext
) -> None:
    ns = console.ns
    async with console.client("admin") as http:
        bad = await http.post(f"/api/v1/namespaces/{ns}/silences", json={"rule_id": "x"})
        assert bad.status_code == 422
        assert "for" in bad.json()["error"]
        r = await http.post(
            f"/api/v1/namespaces/{ns}/silences",
            json={"name": "window", "matchers": ['service="benefits_api"'], "for": "2h",
                  "reason": "maintenance", "author": "someone else"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        found = await console.console.store("test").get(ns, "silence", "window")
        assert found is not None
        assert isinstance(found.object, Silence)
        assert found.object.author == "token:admin"
        assert found.entry.author == "token:admin"

        async def listed() -> list[dict[str, Any]] | None:
            rows = (await http.get(f"/api/v1/namespaces/{ns}/silences")).json()
            return rows or None

        [row] = await wait_until(listed, timeout=20, message="the silence, followed")
        assert row["active"] is True
        gone = await http.delete(f"/api/v1/namespaces/{ns}/silences/window")
        assert gone.status_code == 200
        assert (await http.delete(f"/api/v1/namespaces/{ns}/silences/nope")).status_code == 404

        async def inactive() -> bool:
            rows = (await http.get(f"/api/v1/namespaces/{ns}/silences")).json()
            return rows[0]["active"] is False

        await wait_until(inactive, timeout=20, message="the silence, expired")
    async with console.client("responder") as http:  # not on call: no override
        r = await http.post(f"/api/v1/namespaces/{ns}/silences", json={"rule_id": "x", "for": "1h"})
        assert r.status_code == 403
    actions = await audit_actions(js, ns)
    assert ("token:admin", "silence.created") in actions
    assert ("token:admin", "silence.expired") in actions


async def test_a_queue_pause_is_the_workers_key_saying_who_paused_it(
    console: Running, js: JetStreamContext
) -> None:
    ns = console.ns
    kv = await js.key_value(specs.JOB_CONTROL.bucket)
    key = specs.queue_pause_key(ns, "claims_q")
    async with console.client("admin") as http:
        r = await http.post(f"/api/v1/namespaces/{ns}/queues/claims_q/pause")
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True
        entry = await kv.get(key)
        assert json.loads(entry.value or b"{}")["paused_by"] == "token:admin"
        again = await http.post(f"/api/v1/namespaces/{ns}/queues/claims_q/pause")
        assert again.json()["changed"] is False
        bad = await http.post(f"/api/v1/namespaces/{ns}/queues/no.dots/pause")
        assert bad.status_code in (404, 422)
        r = await http.post(f"/api/v1/namespaces/{ns}/queues/claims_q/resume")
        assert r.status_code == 200
    try:
        await kv.get(key)
        raise AssertionError("the pause key outlived the resume")
    except (KeyNotFoundError, KeyDeletedError):
        pass
    actions = await audit_actions(js, ns)
    assert actions.count(("token:admin", "queue.pause")) == 1
    assert ("token:admin", "queue.resume") in actions


async def test_a_dead_letter_is_replayed_once_to_its_subject_in_its_namespace_only(
    console: Running, js: JetStreamContext
) -> None:
    ns = console.ns
    headers = {"Hms-Dlq-Subject": f"job.run.{ns}.claims_q", "Hms-Dlq-Reason": "bad"}
    ours = await js.publish(f"dlq.job.run.{ns}.claims_q", b"poison", headers=headers)
    theirs = await js.publish(
        "dlq.job.run.ssa.other_q", b"x", headers={"Hms-Dlq-Subject": "job.run.ssa.other_q"}
    )
    async with console.client("admin") as http:
        other = await http.post(f"/api/v1/namespaces/{ns}/dead-letters/{theirs.seq}/replay")
        assert other.status_code == 404
        r = await http.post(f"/api/v1/namespaces/{ns}/dead-letters/{ours.seq}/replay")
        assert r.status_code == 200, r.text
        assert r.json()["replayed_to"] == f"job.run.{ns}.claims_q"
        twice = await http.post(f"/api/v1/namespaces/{ns}/dead-letters/{ours.seq}/replay")
        assert twice.status_code == 404
    back = await js.get_last_msg(specs.JOB_RUNS.name, f"job.run.{ns}.claims_q")
    assert back.data == b"poison"
    assert ("token:admin", "dlq.replay") in await audit_actions(js, ns)


async def test_a_range_beyond_the_live_window_is_asked_of_the_metrics_collector(
    start_console: StartConsole, nats_server: NatsHandle, tmp_path: Path, js: JetStreamContext
) -> None:
    collector = create_collector(
        MetricsCollectorSettings(
            nats_url=nats_server.url, state_dir=tmp_path / "collector", heartbeat_interval_s=60
        )
    )
    async with start_console(metric_window_s=60.0) as console, running(collector):
        ns = console.ns
        now = datetime.now(UTC)
        samples = [
            MetricSample(name="api.latency_p99", value=100.0 + i, unit="ms",
                         observed_at=now - timedelta(minutes=90 - i))
            for i in range(3)
        ]  # fmt: skip
        await publish(
            js,
            MetricSampleBatch.create(
                namespace=ns, occurred_at=now, source="portal", origin="push", samples=samples
            ),
        )
        async with console.client("viewer") as http:

            async def asked() -> dict[str, Any] | None:
                r = await http.get(f"/api/v1/namespaces/{ns}/metrics/api.latency_p99?since_s=7200")
                body = r.json()
                return body if r.status_code == 200 and body["series"] else None

            body = await wait_until(asked, timeout=20, message="the collector's answer")
        assert body["source"] == "metrics-collector"
        values = [v for _, v in body["series"][0]["points"]]
        assert values == [100.0, 101.0, 102.0]
