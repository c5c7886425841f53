"""Escalation: from an incident opened on the bus to the first e-mail the SMTP server accepted,
and how late escalation steps fire against their due time, across a restart of the engine.

- ``first_email_p99_s``: ``IncidentOpened`` published to JetStream -> the incident-engine's
  escalation (durable consumer, SQLite store, leader loop on the system clock) -> aiosmtplib ->
  a real SMTP server (aiosmtpd) accepting the message. Target: p99 at most 10 s. Baseline: the
  raw request/reply p99 of this run (seconds).
- ``step_lateness_p99_s``: incidents whose policy has three levels a second apart, repeated
  (nine steps each); the engine is stopped mid-run and started again 2 s later (its due times
  are in its SQLite file), and every step's firing is compared with its due time. Target:
  p99 at most 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from hms_contracts import IncidentOpened, specs
from hms_contracts.config import ConfigObject, parse_object
from hms_incident_engine.core import SERVICE
from hms_incident_engine.escalation import (
    EscalationEngine,
    EscalationSettings,
    StaticDirectory,
    escalate_forever,
    escalation_resources,
)
from hms_incident_engine.escalation import router as escalation_router
from hms_kit import Service, SystemClock
from hms_kit.publish import publish
from hms_testing.smtp import SmtpServer
from hms_testing.waiting import wait_until
from nats.js.errors import NotFoundError

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, percentile, rounded_runs, unique

log = logging.getLogger(__name__)

BENCH = "incidents"
DOWNTIME_S = 2.0
"""How long the engine stays down in the restart: about what a supervisor takes to start it."""


def _objects(namespace: str, delay: str, repeat: int) -> list[ConfigObject]:
    people = [f"oncall{i}@agency.gov" for i in range(3)]
    return [
        parse_object(
            {
                "kind": "escalation_policy",
                "namespace": namespace,
                "name": "default",
                "levels": [{"targets": [p], "delay": delay} for p in people],
                "repeat": repeat,
            }
        )
    ]


def _service(url: str, state: Path, smtp: SmtpServer, directory: StaticDirectory) -> Service:
    settings = EscalationSettings(
        nats_url=url,
        state_dir=state,
        heartbeat_interval_s=60,
        smtp_port=smtp.port,
        smtp_security="none",
        escalation_tick_s=0.5,
    )
    clock = SystemClock()

    @asynccontextmanager
    async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
        async with escalation_resources(service, clock, directory) as escalation:
            yield {"clock": clock, **escalation}

    return Service(
        SERVICE,
        settings,
        version="bench",
        routers=(escalation_router,),
        resources=resources,
        leader_loops=(escalate_forever,),
        consumers=(specs.INCIDENT_ESCALATION,),
        config_kinds=(),
    )


async def _leading(service: Service) -> None:
    await service.app.start()
    deadline = time.monotonic() + 30
    while not service.leader:
        if time.monotonic() > deadline:
            raise RuntimeError("the escalation service did not take the lease in 30 s")
        await asyncio.sleep(0.05)


async def _fresh_incidents(url: str) -> None:
    """An empty incident stream and consumer, so no repetition sees another's incidents."""
    async with base.connected(url) as nc:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(specs.INCIDENTS.name)


def _opened(namespace: str, incident_id: str) -> IncidentOpened:
    return IncidentOpened.create(
        namespace=namespace,
        occurred_at=datetime.now(UTC),
        incident_id=incident_id,
        title="API latency p99 above 1000 ms",
        severity="critical",
        cause="alert",
    )


async def first_email(url: str, incidents: int) -> list[float]:
    """Seconds from each incident's publication to its first accepted e-mail."""
    await _fresh_incidents(url)
    namespace = unique("bench")
    smtp = SmtpServer()
    smtp.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = StaticDirectory(_objects(namespace, "1h", 0))
            service = _service(url, Path(tmp), smtp, directory)
            await _leading(service)
            try:
                published: dict[str, float] = {}
                async with base.connected(url) as nc:
                    js = nc.jetstream()
                    for i in range(incidents):
                        iid = f"inc-{i}"
                        published[iid] = time.monotonic()
                        await publish(js, _opened(namespace, iid))
                        await asyncio.sleep(0.05)
                await wait_until(
                    lambda: len(smtp.inbox.messages) >= incidents,
                    timeout=60,
                    message="every incident's first e-mail",
                )
            finally:
                await service.app.stop()
    finally:
        smtp.stop()
    times = [  # the first e-mail of each incident: level 1 only, one per incident
        at - published[str(msg["X-HMS-Incident"])]
        for (_, msg), at in zip(smtp.inbox.messages, smtp.inbox.accepted_at, strict=True)
    ]
    if len(times) < incidents:
        raise RuntimeError(f"only {len(times)} of {incidents} first e-mails arrived in 60 s")
    return times


async def lateness(url: str, incidents: int) -> list[float]:
    """Seconds each step fired after its due time, the engine restarted once mid-run."""
    await _fresh_incidents(url)
    namespace = unique("bench")
    smtp = SmtpServer()
    smtp.start()
    directory = StaticDirectory(_objects(namespace, "1s", 2))  # 9 steps over 8 s
    try:
        with tempfile.TemporaryDirectory() as tmp:
            service = _service(url, Path(tmp), smtp, directory)
            await _leading(service)
            async with base.connected(url) as nc:
                js = nc.jetstream()
                for i in range(incidents):
                    await publish(js, _opened(namespace, f"inc-{i}"))
                    await asyncio.sleep(2.0 / incidents)
            await asyncio.sleep(2.0)
            await service.app.stop()  # the restart: due times stay in the SQLite file
            log.info("escalation bench: engine stopped mid-run, starting it again")
            await asyncio.sleep(DOWNTIME_S)
            service = _service(url, Path(tmp), smtp, directory)
            await _leading(service)
            engine: EscalationEngine = service.broker.context.get("escalation")
            expected = incidents * 9
            deadline = time.monotonic() + 40
            while len(await engine.store.lateness()) < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError("not every escalation step fired within 40 s")
                await asyncio.sleep(0.2)
            late = await engine.store.lateness()
            await service.app.stop()
    finally:
        smtp.stop()
    return late


async def run(ctx: BenchContext) -> list[Record]:
    incidents = ctx.n(50, 10)
    log.info("escalation: %d x %d incidents to their first e-mail", ctx.repeats, incidents)
    p99s = []
    for _ in range(ctx.repeats):
        p99s.append(percentile(sorted(await first_email(ctx.url, incidents)), 99))
    value = sorted(p99s)[len(p99s) // 2]
    raw = ctx.baselines.get(base.REQREP_P99)
    baseline = raw / 1e6 if raw else None  # us -> s
    out = [
        emit(
            BENCH,
            "first_email_p99_s",
            value,
            "s",
            baseline=baseline,
            ratio=round(value / baseline, 3) if baseline else None,
            n=incidents,
            runs=rounded_runs(p99s),
            target=10.0,
        )
    ]
    runs = 1 if ctx.quick else 2
    late: list[float] = []
    per_run = []
    for _ in range(runs):
        found = await lateness(ctx.url, ctx.n(20, 6))
        late += found
        per_run.append(percentile(sorted(found), 99))
    out.append(
        emit(
            BENCH,
            "step_lateness_p99_s",
            percentile(sorted(late), 99),
            "s",
            n=len(late),
            runs=rounded_runs(per_run),
            restarts=runs,
            downtime_s=DOWNTIME_S,
            max=round(max(late), 3),  # the steps due while the engine was down
            target=15.0,
        )
    )
    return out
