"""The escalation engine against a real SMTP server and a real SQLite file, its time moved by
hand: levels in order until someone acknowledges, re-notification after the acknowledgement
timeout, delivery after the SMTP server comes back, due times kept across a restart, and every
notification ending as sent or as a visible error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hms_contracts import IncidentOpened
from hms_contracts.config import parse_object
from hms_incident_engine.escalation import EscalationEngine, StaticDirectory
from hms_incident_engine.escalation.errors import InvalidMessage
from hms_kit import FakeClock
from hms_testing.smtp import SmtpServer

NS = "usds_unemployment"
T0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
EngineFactory = Callable[..., EscalationEngine]

TITLE = "API latency p99 above 1000 ms"


def opened(incident_id: str = "inc-1", **labels: str) -> IncidentOpened:
    return IncidentOpened.create(
        namespace=NS, occurred_at=T0, incident_id=incident_id, title=TITLE,
        severity="critical", cause="alert", labels={"service": "benefits_api", **labels},
    )  # fmt: skip


async def run_for(engine: EscalationEngine, clock: FakeClock, seconds: int, step: int = 1) -> None:
    """Move time on ``step`` seconds at a time, the engine ticking after each move."""
    for _ in range(seconds // step):
        await clock.advance(step)
        await engine.tick()
        await engine.settle()


async def start(engine: EscalationEngine, event: IncidentOpened) -> None:
    await engine.opened(event)
    await engine.tick()
    await engine.settle()


async def events(engine: EscalationEngine) -> list[tuple[str, dict[str, Any]]]:
    return [(subject, json.loads(data)) for _, _, subject, data in await engine.store.outbox()]


async def test_level_two_is_notified_when_level_one_does_not_acknowledge(
    engine: EscalationEngine, smtp: SmtpServer, clock: FakeClock
) -> None:
    await start(engine, opened())
    [first] = smtp.inbox.to("ana@agency.gov")  # on call in the primary schedule that week
    assert first["Subject"] == f"[hms-ops critical] {NS}: {TITLE} (escalation level 1)"
    assert smtp.inbox.to("lead@agency.gov") == []
    await run_for(engine, clock, 599, step=599)
    assert smtp.inbox.to("lead@agency.gov") == []
    await run_for(engine, clock, 2)
    assert len(smtp.inbox.to("lead@agency.gov")) == 1
    assert len(smtp.inbox.to("ana@agency.gov")) == 1
    sent = [(s, e["level"], e["target"]) for s, e in await events(engine) if "escalated" in s]
    assert sent == [
        (f"ops.incident.{NS}.escalated", 1, "ana@agency.gov"),
        (f"ops.incident.{NS}.escalated", 2, "lead@agency.gov"),
    ]
    assert await engine.store.lateness() == [0.0, 0.0]


async def test_an_acknowledgement_stops_the_levels_and_its_timeout_notifies_again(
    engine: EscalationEngine, smtp: SmtpServer, clock: FakeClock
) -> None:
    await start(engine, opened())
    await run_for(engine, clock, 60, step=60)
    await engine.acknowledged(NS, "inc-1", clock.now())
    await run_for(engine, clock, 1740, step=60)  # 30 minutes after the acknowledgement, less 1
    assert smtp.inbox.to("lead@agency.gov") == []
    assert len(smtp.inbox.to("ana@agency.gov")) == 1
    await run_for(engine, clock, 60, step=60)
    assert len(smtp.inbox.to("ana@agency.gov")) == 2  # level 1 again, not yet level 2
    assert smtp.inbox.to("lead@agency.gov") == []
    await engine.closed(NS, "inc-1")
    await run_for(engine, clock, 7200, step=300)
    assert len(smtp.inbox.messages) == 2


async def test_smtp_down_then_back_delivers_after_retries_and_raises_an_alert_meanwhile(
    engine: EscalationEngine, smtp: SmtpServer, clock: FakeClock
) -> None:
    smtp.stop()
    await start(engine, opened())
    await run_for(engine, clock, 29)
    assert [s for s, _ in await events(engine)] == []  # not late enough to cry wolf
    await run_for(engine, clock, 30)  # every step ends as sent or as a visible error in 60 s
    found = await events(engine)
    assert [s for s, _ in found] == [
        f"ops.incident.{NS}.escalation_failed",
        f"ops.alert.{NS}.firing",
    ]
    failed, alert = found[0][1], found[1][1]
    assert failed["retrying"] is True
    assert failed["level"] == 1
    assert "Connect" in failed["reason"] or "refused" in failed["reason"].lower()
    assert alert["rule_id"] == "escalation_failed"
    assert alert["labels"]["incident_id"] == "inc-1"
    smtp.start()
    await run_for(engine, clock, 31)
    assert len(smtp.inbox.to("ana@agency.gov")) == 1
    subjects = [s for s, _ in await events(engine)]
    assert subjects[2:] == [f"ops.incident.{NS}.escalated", f"ops.alert.{NS}.resolved"]
    [(level, _, state, attempts, _, _, _)] = await engine.store.delivery_states(NS, "inc-1")
    assert (level, state) == (1, "sent")
    assert attempts > 3


async def test_a_restart_mid_escalation_keeps_the_due_times(
    smtp: SmtpServer, clock: FakeClock, make_engine: EngineFactory
) -> None:
    first = make_engine()
    await start(first, opened())
    await run_for(first, clock, 300, step=60)
    await first.close()
    await first.store.close()
    # down for 5 minutes, across level 2's due time
    await clock.advance(300)
    second = make_engine()
    try:
        await run_for(second, clock, 1)
        assert len(smtp.inbox.to("lead@agency.gov")) == 1
        assert len(smtp.inbox.to("ana@agency.gov")) == 1  # level 1 is not sent twice
        assert await second.store.lateness() == [0.0, 1.0]  # due at 10:00 exactly
    finally:
        await second.close()
        await second.store.close()


async def test_nobody_on_call_is_a_visible_error_at_once(
    engine: EscalationEngine, smtp: SmtpServer, directory: StaticDirectory
) -> None:
    doc = {"kind": "escalation_policy", "namespace": NS, "name": "default"}
    directory.put(parse_object({**doc, "levels": [{"targets": ["schedule:weekend"]}]}))
    await start(engine, opened())
    found = await events(engine)
    assert [s for s, _ in found] == [
        f"ops.incident.{NS}.escalation_failed",
        f"ops.alert.{NS}.firing",
    ]
    assert "schedule 'weekend' does not exist" in found[0][1]["reason"]
    assert smtp.inbox.messages == []


async def test_an_incident_without_a_policy_is_not_escalated(
    engine: EscalationEngine, smtp: SmtpServer
) -> None:
    await start(engine, opened(escalation_policy="nonexistent"))
    assert await engine.store.escalation(NS, "inc-1") is None
    assert smtp.inbox.messages == []


@pytest.mark.parametrize(
    ("subject", "targets"),
    [
        ("Rollback complete\r\nBcc: attacker@evil.example", ["ana@agency.gov"]),
        ("Rollback complete\n", ["ana@agency.gov"]),
        ("Rollback complete", ["ana@agency.gov\r\nBcc: attacker@evil.example"]),
        ("Rollback complete", ["Ana <ana@agency.gov>"]),
        ("Rollback complete", ["ana@agency.gov, bo@agency.gov"]),
        ("Rollback complete", []),
    ],
)
async def test_a_line_break_in_a_subject_or_an_address_is_refused_and_nothing_sent(
    engine: EscalationEngine, smtp: SmtpServer, subject: str, targets: list[str]
) -> None:
    with pytest.raises(InvalidMessage):
        await engine.notify(NS, "inc-1", subject, "body", targets, key="k1")
    with pytest.raises(InvalidMessage):
        await engine.sender.send(NS, "inc-1", subject, "body", targets)
    await engine.tick()
    await engine.settle()
    assert smtp.inbox.messages == []
    assert await engine.store.delivery_states(NS, "inc-1") == []


async def test_a_playbook_notification_is_delivered_once_per_request(
    engine: EscalationEngine, smtp: SmtpServer
) -> None:
    targets = ["ana@agency.gov", "lead@agency.gov"]
    assert await engine.notify(NS, "inc-1", "Rollback complete", "Done.", targets, key="ev-1")
    assert not await engine.notify(NS, "inc-1", "Rollback complete", "Done.", targets, key="ev-1")
    await engine.tick()
    await engine.settle()
    [(rcpts, msg)] = smtp.inbox.messages
    assert rcpts == targets
    assert msg["Subject"] == "Rollback complete"
    assert msg["X-HMS-Incident"] == "inc-1"


async def test_a_playbook_notifies_oncall_through_the_default_policy_and_schedules_by_name(
    engine: EscalationEngine, smtp: SmtpServer
) -> None:
    # the documents' playbook: notify oncall 'Rollback complete'
    await engine.notify(NS, "inc-1", "Rollback complete", "Done.", ["oncall"], key="ev-1")
    await engine.notify(NS, "inc-1", "Rollback complete", "Done.", ["primary"], key="ev-2")
    await engine.tick()
    await engine.settle()
    assert [rcpts for rcpts, _ in smtp.inbox.messages] == [["ana@agency.gov"]] * 2
    with pytest.raises(InvalidMessage, match="'nobody' is neither an e-mail address"):
        await engine.notify(NS, "inc-1", "Rollback complete", "Done.", ["nobody"], key="ev-3")


async def test_a_title_with_line_breaks_still_escalates_on_one_subject_line(
    engine: EscalationEngine, smtp: SmtpServer
) -> None:
    event = opened().model_copy(update={"title": "latency\r\nBcc: attacker@evil.example"})
    await start(engine, event)
    [msg] = smtp.inbox.to("ana@agency.gov")
    assert msg["Subject"].endswith("latency Bcc: attacker@evil.example (escalation level 1)")
    assert msg["Bcc"] is None


async def test_the_probe_sends_a_test_notification_each_period_and_alerts_when_it_fails(
    smtp: SmtpServer, clock: FakeClock, make_engine: EngineFactory
) -> None:
    engine = make_engine(escalation_probe_every_s=600, escalation_probe_to="probe@agency.gov")
    try:
        await run_for(engine, clock, 60, step=60)
        await run_for(engine, clock, 60, step=60)
        [probe] = smtp.inbox.to("probe@agency.gov")  # one per period, however many ticks
        assert probe["Subject"] == "[hms-ops] escalation probe 2026-03-07T12:00:00+00:00"
        smtp.stop()
        await run_for(engine, clock, 480 + 59)  # the next period's probe: 30 s of failures
        found = await events(engine)
        assert [(s, e.get("rule_id")) for s, e in found] == [
            ("ops.incident.system.escalation_failed", None),
            ("ops.alert.system.firing", "escalation_probe_failed"),
        ]
        assert len(smtp.inbox.to("probe@agency.gov")) == 1
    finally:
        await engine.close()
        await engine.store.close()


async def test_a_notification_still_waiting_its_turn_raises_its_alert_on_time(
    clock: FakeClock, make_engine: EngineFactory
) -> None:
    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)  # accepts the connection, never greets: every attempt hangs

    hole = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    engine = make_engine(smtp_port=hole.sockets[0].getsockname()[1], smtp_timeout_s=300)
    try:
        for i in range(21):  # one more than the engine sends at once
            await engine.notify(NS, "inc-1", "Rollback complete", "Done.", ["a@b.gov"], key=f"{i}")
        await engine.tick()
        await clock.advance(31)
        await engine.tick()
        found = await events(engine)
        assert [s for s, _ in found] == [
            f"ops.incident.{NS}.escalation_failed",
            f"ops.alert.{NS}.firing",
        ]
        assert found[0][1]["reason"] == "not sent 31 s after its due time"
        assert found[0][1]["step"] == "20"
    finally:
        await engine.close()
        await engine.store.close()
        hole.close()
