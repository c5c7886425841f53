"""Escalation inside a real service: incidents from a real nats-server, policies and schedules
from the config registry, e-mail to a real SMTP server, and the emailed acknowledge link on the
service's HTTP server (a GET acknowledges nothing; the POST once; refused twice, expired or
forged)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from hms_contracts import (
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentUpdated,
    NotifyRequested,
    specs,
)
from hms_contracts.config import parse_object
from hms_incident_engine.core import SERVICE
from hms_incident_engine.escalation import (
    EscalationEngine,
    EscalationSettings,
    escalate_forever,
    escalation_resources,
)
from hms_incident_engine.escalation import router as escalation_router
from hms_kit import FakeClock, Service
from hms_kit.publish import publish
from hms_ops.configstore import ConfigStore
from hms_testing import NatsHandle, running, wait_until
from hms_testing.smtp import SmtpServer
from nats.js import JetStreamContext

NS = "usds_unemployment"
T0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
Acks = list[tuple[str, str, str, str]]
pytestmark = pytest.mark.slow


def build(nats: NatsHandle, state: Path, smtp: SmtpServer, clock: FakeClock, acks: Acks) -> Service:
    settings = EscalationSettings(
        nats_url=nats.url, state_dir=state, heartbeat_interval_s=60, smtp_port=smtp.port,
        smtp_security="none", ack_link_ttl_s=3600,
    )  # fmt: skip

    async def acknowledge(namespace: str, incident_id: str, actor: str, via: str) -> None:
        acks.append((namespace, incident_id, actor, via))

    @asynccontextmanager
    async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
        async with escalation_resources(service, clock) as escalation:
            yield {"clock": clock, "acknowledge": acknowledge, **escalation}

    return Service(
        SERVICE, settings, version="test", routers=(escalation_router,), resources=resources,
        leader_loops=(escalate_forever,), consumers=(specs.INCIDENT_ESCALATION,),
    )  # fmt: skip


def opened(incident_id: str, title: str) -> IncidentOpened:
    return IncidentOpened.create(
        namespace=NS, occurred_at=T0, incident_id=incident_id, title=title,
        severity="critical", cause="alert", labels={"service": "benefits_api"},
    )  # fmt: skip


async def escalated(js: JetStreamContext) -> list[IncidentEscalated]:
    info = await js.stream_info(specs.INCIDENTS.name)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(specs.INCIDENTS.name, seq)
        if (msg.subject or "").endswith(".escalated"):
            out.append(IncidentEscalated.model_validate_json(msg.data or b""))
    return out


async def test_the_emailed_link_acknowledges_once_and_only_by_its_confirmation_post(
    nats_server: NatsHandle,
    js: JetStreamContext,
    smtp: SmtpServer,
    tmp_path: Path,
    documents: list[dict[str, Any]],
) -> None:
    clock, acks = FakeClock(T0), cast(Acks, [])
    service = build(nats_server, tmp_path, smtp, clock, acks)
    async with running(service), aiohttp.ClientSession() as http:
        await wait_until(lambda: service.leader, timeout=15, message="it leads")
        store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="ops")
        await store.apply([parse_object(d) for d in documents])
        await wait_until(
            lambda: service.config.get("escalation_policy", NS, "default"),
            timeout=15, message="the policy reached the service",
        )  # fmt: skip
        title = "p99 <script>alert(1)</script> & more"
        await publish(js, opened("inc-1", title))
        [mail] = await wait_until(lambda: smtp.inbox.to("ana@agency.gov"), timeout=20)
        link = smtp.inbox.link(mail, "/escalation/ack/")
        assert link.startswith(service.health.url)

        for _ in range(2):  # a mail scanner's pre-fetches: the page, and nothing else
            async with http.get(link) as page:
                assert page.status == 200
                html = await page.text()
            assert "p99 &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
            assert "<script>" not in html
            assert "method='post'" in html
        assert acks == []
        engine: EscalationEngine = service.broker.context.get("escalation")
        assert (await engine.store.escalation(NS, "inc-1")).state == "active"  # type: ignore[union-attr]

        async with http.post(link, data={}) as bare:  # a POST without the page's form
            assert bare.status == 400
        async with http.post(link, data={"confirm": "acknowledge"}) as done:
            assert done.status == 200
            assert "is acknowledged" in await done.text()
        assert acks == [(NS, "inc-1", "ana@agency.gov", "email_link")]
        async with http.post(link, data={"confirm": "acknowledge"}) as twice:
            assert twice.status == 410
        async with http.get(link) as again:
            assert again.status == 410
        assert len(acks) == 1

        payload, _, mac = link.rpartition("/")[2].partition(".")
        base = link.rpartition("/")[0]
        forged = [f"{base}/{payload}.{mac[:-2]}xx", f"{base}/{payload[:-2]}AA.{mac}", f"{base}/x"]
        for url in forged:
            async with http.post(url, data={"confirm": "acknowledge"}) as refused:
                assert refused.status == 403, url
        assert len(acks) == 1

        # the acknowledged incident's level 2 never comes; another incident's does
        await publish(js, opened("inc-2", "queue depth above 10000"))
        [_, mail2] = await wait_until(
            lambda: smtp.inbox.to("ana@agency.gov")[1:] and smtp.inbox.to("ana@agency.gov"),
            timeout=20,
        )
        late_link = smtp.inbox.link(mail2, "/escalation/ack/")
        await clock.advance(600)
        [lead] = await wait_until(
            lambda: ticked(clock, smtp.inbox.to("lead@agency.gov")), timeout=20
        )
        assert "inc-2" in lead.get_body(("plain",)).get_content()
        await clock.advance(3000)  # past the first link's hour
        async with http.post(late_link, data={"confirm": "acknowledge"}) as expired:
            assert expired.status == 410
            assert "expired" in await expired.text()
        assert len(acks) == 1
        sent = await wait_until(lambda: _count(js, 3), timeout=20)
    assert [(e.incident_id, e.level, e.target) for e in sent] == [
        ("inc-1", 1, "ana@agency.gov"),
        ("inc-2", 1, "ana@agency.gov"),
        ("inc-2", 2, "lead@agency.gov"),
    ]


async def ticked(clock: FakeClock, found: list[Any]) -> list[Any]:
    """``found`` once it is not empty; meanwhile a second passes (the loop may have begun its
    sleep just after the test moved the clock)."""
    if not found:
        await clock.advance(1)
    return found


async def _count(js: JetStreamContext, n: int) -> list[IncidentEscalated] | None:
    found = await escalated(js)
    return found if len(found) >= n else None


async def test_an_acknowledgement_or_a_close_on_the_bus_stops_the_escalation(
    nats_server: NatsHandle,
    js: JetStreamContext,
    smtp: SmtpServer,
    tmp_path: Path,
    documents: list[dict[str, Any]],
) -> None:
    clock, acks = FakeClock(T0), cast(Acks, [])
    service = build(nats_server, tmp_path, smtp, clock, acks)
    async with running(service):
        await wait_until(lambda: service.leader, timeout=15, message="it leads")
        store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="ops")
        await store.apply([parse_object(d) for d in documents])
        await wait_until(
            lambda: service.config.get("escalation_policy", NS, "default"),
            timeout=15,
            message="the policy reached the service",
        )
        engine: EscalationEngine = service.broker.context.get("escalation")
        for iid in ("inc-a", "inc-b", "inc-c"):  # b: nobody acknowledges, nobody closes
            await publish(js, opened(iid, "disk full"))
        await wait_until(lambda: len(smtp.inbox.to("ana@agency.gov")) == 3, timeout=20)
        await publish(
            js,
            IncidentUpdated.create(
                namespace=NS, occurred_at=T0, incident_id="inc-a", revision=2,
                status="acknowledged", severity="critical", actor="ana@agency.gov",
            ),
        )  # fmt: skip
        await publish(
            js,
            IncidentClosed.create(
                namespace=NS, occurred_at=T0, incident_id="inc-c", resolution="resolved",
                closed_by="ana@agency.gov", opened_at=T0,
            ),
        )  # fmt: skip

        async def state(iid: str) -> str | None:
            found = await engine.store.escalation(NS, iid)
            return None if found is None else found.state

        await wait_until(lambda: _is(state("inc-a"), "acknowledged"), timeout=20)
        await wait_until(lambda: _is(state("inc-c"), "closed"), timeout=20)
        await clock.advance(600)  # every level 2 is due now: only b's is sent
        [lead] = await wait_until(lambda: ticked(clock, smtp.inbox.to("lead@agency.gov")))
        assert lead["X-HMS-Incident"] == "inc-b"
        await clock.advance(1200)
        await engine.settle()
        assert len(smtp.inbox.to("lead@agency.gov")) == 1


async def _is(current: Awaitable[str | None], expected: str) -> bool:
    return await current == expected


async def test_a_playbooks_notify_request_on_the_bus_is_emailed_once(
    nats_server: NatsHandle,
    js: JetStreamContext,
    smtp: SmtpServer,
    tmp_path: Path,
    documents: list[dict[str, Any]],
) -> None:
    clock, acks = FakeClock(T0), cast(Acks, [])
    service = build(nats_server, tmp_path, smtp, clock, acks)
    async with running(service):
        await wait_until(lambda: service.leader, timeout=15, message="it leads")
        store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="ops")
        await store.apply([parse_object(d) for d in documents])
        await wait_until(
            lambda: service.config.get("oncall_schedule", NS, "primary"),
            timeout=15,
            message="the schedule reached the service",
        )
        request = NotifyRequested.create(
            namespace=NS, occurred_at=T0, incident_id="inc-n", playbook="rollback",
            step_index=1, target="lead@agency.gov", message="Rollback complete",
            title="API latency high", severity="critical",
        )  # fmt: skip
        for _ in range(2):  # delivered again by the bus: one e-mail all the same
            await publish(js, request)
        [mail] = await wait_until(lambda: ticked(clock, smtp.inbox.to("lead@agency.gov")))
        assert "API latency high" in mail["Subject"]
        assert "Rollback complete" in mail.get_body(("plain",)).get_content()
        await engine_settled(service)
        assert len(smtp.inbox.to("lead@agency.gov")) == 1


async def engine_settled(service: Service) -> None:
    engine: EscalationEngine = service.broker.context.get("escalation")
    await engine.settle()
