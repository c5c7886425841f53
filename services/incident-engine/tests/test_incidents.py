"""Incidents against a real nats-server: acknowledged once (through the escalation code's
``acknowledge``), resolved by people or by the alert, breaches file a ticket, silences mute, and
the audit chain is published, refuses changes and names the first tampered record."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hms_contracts import (
    AuditRecorded,
    IncidentClosed,
    IncidentOpened,
    IncidentUpdated,
    SlaBreached,
    TicketFiled,
    specs,
)
from hms_contracts.auditverify import main as verify_export
from hms_contracts.config import Silence
from hms_testing import NatsHandle, wait_until
from hms_testing.incidents import (
    NS,
    engine_of,
    firing,
    incident_events,
    leading,
    request,
    resolved,
    send,
    stream_events,
    wait_for_event,
)
from nats.aio.client import Client
from nats.js import JetStreamContext


async def test_acknowledge_is_recorded_once_and_published(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, []) as service:
        await send(js, firing())
        events = await wait_for_event(js, lambda s, e: isinstance(e, IncidentOpened), "opened")
        iid = next(e for _, e in events if isinstance(e, IncidentOpened)).incident_id
        acknowledge: Callable[[str, str, str, str], Awaitable[None]] = service.broker.context.get(
            "acknowledge"
        )
        await acknowledge(NS, iid, "alice@agency.gov", "email")
        await acknowledge(NS, iid, "bob@agency.gov", "email")  # idempotent
        events = await wait_for_event(
            js, lambda s, e: isinstance(e, IncidentUpdated), "the update published"
        )
        timeline = await engine_of(service).store.timeline(NS, iid)
        checked, broken = await engine_of(service).store.verify_audit(NS)
    [update] = [e for _, e in events if isinstance(e, IncidentUpdated)]
    assert (update.status, update.actor) == ("acknowledged", "alice@agency.gov")
    assert "via email" in (update.note or "")
    assert [t["actor"] for t in timeline if t["what"] == "acknowledged"] == ["alice@agency.gov"]
    audit = [e for _, e in await stream_events(js, specs.AUDIT.name)]
    acks = [
        a for a in audit if isinstance(a, AuditRecorded) and a.action == "incident.acknowledged"
    ]
    assert [(a.actor, a.detail["via"]) for a in acks] == [("alice@agency.gov", "email")]
    assert broken is None
    assert checked == len(audit)


async def test_the_alert_resolving_closes_its_incident(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, []):
        await send(js, firing(), resolved())
        events = await wait_for_event(js, lambda s, e: isinstance(e, IncidentClosed), "closed")
    [closed] = [e for _, e in events if isinstance(e, IncidentClosed)]
    assert closed.resolution == "auto_resolved"


async def test_a_person_resolves_an_incident_by_request(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, [], close_on_resolve=False):
        await send(js, firing(), resolved())
        [listed] = await wait_until(lambda: request(nc, "list", {}), message="listed")

        async def resolution_seen() -> bool:
            shown = await request(nc, "show", {"incident_id": listed["incident_id"]})
            return any(t["what"] == "alert" for t in shown["timeline"])

        await wait_until(resolution_seen, message="the alert's resolution on the timeline")
        assert await request(nc, "ack", {"incident_id": listed["incident_id"], "actor": "al"})
        body = {"incident_id": listed["incident_id"], "actor": "al", "note": "rolled back"}
        assert await request(nc, "resolve", body) == "resolved"
        assert await request(nc, "list", {}) == []
        shown = await request(nc, "show", {"incident_id": listed["incident_id"]})
    assert [t["what"] for t in shown["timeline"]] == [
        "opened",
        "alert",
        "acknowledged",
        "resolved",
    ]
    closed = [e for _, e in await incident_events(js) if isinstance(e, IncidentClosed)]
    assert [(c.closed_by, c.summary) for c in closed] == [("al", "rolled back")]


async def test_an_sla_breach_opens_an_incident_and_files_a_ticket(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    breach = SlaBreached.create(
        namespace=NS,
        occurred_at=datetime(2026, 11, 25, 5, tzinfo=UTC),
        reason="deadline_missed",
        job_id="ssa_re_score",
        run_id="ssa_re_score@2026-11-25T00:00:00Z",
        deadline=datetime(2026, 11, 25, 5, tzinfo=UTC),
        detail="run not complete 300 minutes after midnight",
    )
    async with leading(nats_server, tmp_path, []):
        await send(js, breach)
        events = await wait_for_event(js, lambda s, e: isinstance(e, TicketFiled), "a ticket")
    [opened] = [e for _, e in events if isinstance(e, IncidentOpened)]
    [ticket] = [e for _, e in events if isinstance(e, TicketFiled)]
    assert opened.cause == "sla_breach"
    assert ticket.source == "sla_breach"
    assert "300 minutes" in ticket.detail
    assert f"ops.incident.{NS}.ticket" in [s for s, _ in events]


async def test_a_silence_mutes_matching_alerts_until_it_expires(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    silence = Silence.model_validate(
        {
            "namespace": NS,
            "name": "maintenance",
            "matchers": ['service="benefits_api"'],
            "ends_at": now + timedelta(hours=1),
            "author": "alice",
            "reason": "planned maintenance",
        }
    )
    async with leading(nats_server, tmp_path, [silence]) as service:
        await send(js, firing(labels={"service": "benefits_api"}))
        await send(js, firing("b1b2c3d4e5f60718", labels={"service": "other"}))
        events = await wait_for_event(js, lambda s, e: isinstance(e, IncidentOpened), "opened")
        store = engine_of(service).store
        await wait_until(
            lambda: store.one("SELECT 1 FROM audit WHERE body LIKE '%alert.silenced%'"),
            message="the silenced alert audited",
        )
    assert [e.fingerprint for _, e in events if isinstance(e, IncidentOpened)] == [
        "b1b2c3d4e5f60718"
    ]


async def test_audit_records_refuse_update_and_delete_and_tampering_is_found_at_its_record(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, []) as service:
        await send(js, firing(), resolved(), firing("b1b2c3d4e5f60718"))
        store = engine_of(service).store
        await wait_until(
            lambda: store.one("SELECT 1 FROM audit WHERE sequence = 4"), message="4 records"
        )
        assert (await request(nc, "audit_verify", {}))["broken"] is None
        exported = await request(nc, "audit_export", {})
        path = store.path
    export = tmp_path / "audit.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in exported))
    assert verify_export([str(export)]) == 0

    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET body = 'x' WHERE sequence = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit WHERE sequence = 3")
    # an attacker with the file drops the trigger and rewrites record 3's actor
    db.execute("DROP TRIGGER audit_refuses_update")
    db.execute(
        'UPDATE audit SET body = replace(body, \'"actor":"incident-engine"\', '
        '\'"actor":"mallory"\') WHERE namespace = ? AND sequence = 3',
        (NS,),
    )
    db.commit()
    db.close()
    async with leading(nats_server, tmp_path, []):
        answer = await request(nc, "audit_verify", {})
    assert answer["broken"].startswith(f"namespace {NS} record 3:")
    # and the exported file, edited the same way, fails the standalone check at record 3
    lines = export.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "actor": "mallory"})
    export.write_text("\n".join(lines) + "\n")
    assert verify_export([str(export)]) == 1
    published = await stream_events(js, specs.AUDIT.name)
    with pytest.raises(Exception, match="delete"):
        await js.delete_msg(specs.AUDIT.name, 1)
    assert len(published) >= 4
