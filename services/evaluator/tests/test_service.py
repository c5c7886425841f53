"""The evaluator against a real nats-server, its time moved by hand: the documents' rule goes
pending, fires and resolves; a restart mid-pending neither resets nor fires early; a resolution
while down is announced; no-data each way; a flap rides on keep_firing_for."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hms_contracts import AlertFiring, AlertResolved, MetricSampleBatch, catalogue, specs
from hms_contracts.bus import BusEvent
from hms_contracts.config import Alert, Job, Slo, parse_object
from hms_evaluator.adapters import StaticConfig
from hms_evaluator.app import create_service
from hms_evaluator.evaluation import Evaluation
from hms_evaluator.settings import EvaluatorSettings
from hms_kit import FakeClock, Service, ensure_stream
from hms_testing import NatsHandle, running, wait_until
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

NS = "usds_unemployment"
_unique = itertools.count()


class TickingClock(FakeClock):
    """A fake clock that tells when the tick loop sleeps, so a test moves time between
    ticks and returns once the next tick ran."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.sleeps = 0
        self.sleeping = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.sleeping += 1
        try:
            await super().sleep(seconds)
        finally:
            self.sleeping -= 1

    async def idle(self) -> None:
        await wait_until(lambda: self.sleeping > 0, timeout=20, message="the tick loop is idle")

    async def tick(self, seconds: float) -> None:
        await self.idle()
        before = self.sleeps
        await self.advance(seconds)
        await wait_until(lambda: self.sleeps > before, timeout=20, message="a tick ran")


def start_of_minute() -> datetime:
    """Now, on a whole minute: stored times of the stream and sample times stay close, so the
    replay reads back what the windows need."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def alert(**fields: Any) -> Alert:
    doc = {"kind": "alert", "namespace": NS, "name": "sla_latency_breach"}
    obj = parse_object({**doc, "metric": "api.latency_p99", "condition": "> 1000", **fields})
    assert isinstance(obj, Alert)
    return obj


async def streams(js: JetStreamContext) -> None:
    """What other services own and the evaluator reads (the collector's, the workers')."""
    for spec in (specs.METRICS, specs.JOB_EVENTS, specs.JOB_RUNS):
        await ensure_stream(js, spec)


async def push(
    js: JetStreamContext,
    at: datetime,
    *values: float,
    name: str = "api.latency_p99",
    namespace: str = NS,
    **labels: str,
) -> None:
    samples = [
        {"name": name, "value": v, "labels": labels, "observed_at": at, "unit": "ms"}
        for v in values
    ]
    batch = MetricSampleBatch.create(
        namespace=namespace,
        occurred_at=at,
        source=f"test{next(_unique)}",
        origin="push",
        samples=samples,
    )
    await js.publish(batch.subject(), batch.model_dump_json().encode())


async def announced(js: JetStreamContext, stream: str = specs.ALERTS.name) -> list[BusEvent]:
    """Every event in a stream, in order."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    if not info.state.messages:
        return []
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        out.append(catalogue.decode(msg.subject or "", msg.data or b""))
    return out


def evaluation_of(service: Service) -> Evaluation:
    found = service.broker.context.get("evaluation")
    assert isinstance(found, Evaluation)
    return found


async def ingested(service: Service, count: int) -> None:
    await wait_until(
        lambda: (
            (e := service.broker.context.get("evaluation")) is not None
            and e.engine.ingested + e.engine.dropped >= count
        ),
        timeout=20,
        message=f"{count} samples ingested",
    )


@asynccontextmanager
async def evaluator(
    nats: NatsHandle,
    state: Path,
    clock: TickingClock,
    *,
    alerts: Sequence[Alert] = (),
    slos: Sequence[Slo] = (),
    jobs: Sequence[Job] = (),
    config: StaticConfig | None = None,
    **settings: Any,
) -> AsyncIterator[Service]:
    """An evaluator that leads, its windows rebuilt and its tick loop idle."""
    service = create_service(
        EvaluatorSettings(nats_url=nats.url, state_dir=state, heartbeat_interval_s=60, **settings),
        clock=clock,
        config=config if config is not None else StaticConfig(alerts, slos, jobs),
    )
    async with running(service):
        await wait_until(
            lambda: service.broker.context.get("evaluation") is not None,
            timeout=20,
            message="it leads and evaluates",
        )
        await clock.idle()
        yield service


async def test_the_documents_rule_goes_pending_fires_after_five_minutes_and_resolves(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    t0 = start_of_minute()
    clock = TickingClock(t0)
    async with evaluator(nats_server, tmp_path, clock, alerts=[alert(window="5m")]) as service:
        for minute in range(5):
            await push(js, clock.now(), 1450.0, route="/claims")
            await ingested(service, minute + 1)
            [binding] = evaluation_of(service).engine.bindings()
            assert binding.state.phase == "pending"
            assert await announced(js) == []
            await clock.tick(60)
        await push(js, clock.now(), 1300.0, route="/claims")
        events = await wait_for_alerts(js, 1)
        [fired] = events
        assert isinstance(fired, AlertFiring)
        assert fired.subject() == f"ops.alert.{NS}.firing"
        assert fired.started_at == t0
        assert fired.labels == {"route": "/claims"}
        assert fired.for_s == 300
        await clock.tick(30)
        await push(js, clock.now(), 800.0, route="/claims")
        _, resolved = await wait_for_alerts(js, 2)
    assert isinstance(fired, AlertFiring)
    assert isinstance(resolved, AlertResolved)
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.resolved_at == t0 + timedelta(seconds=330)


async def test_a_restart_mid_pending_neither_resets_nor_fires_early(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    t0 = start_of_minute()
    clock = TickingClock(t0)
    rule = alert(window="10m")
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule]) as service:
        for minute in range(9):  # samples at minutes 0..8, pending since 0
            await push(js, clock.now(), 1500.0)
            await ingested(service, minute + 1)
            if minute < 8:
                await clock.tick(60)
    # down between minute 8 and 9; the windows come back from the stream
    await clock.advance(60)
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule]) as service:
        engine = evaluation_of(service).engine
        assert engine.ingested == 9, "the replay rebuilt the window"
        [binding] = engine.bindings()
        assert binding.state.phase == "pending"
        assert binding.state.active_since == t0.timestamp()
        await push(js, clock.now(), 1500.0)
        await ingested(service, 10)
        await clock.tick(1)
        assert await announced(js) == []
        await clock.tick(59)  # ten minutes since the condition began
        [fired] = await wait_for_alerts(js, 1)
    assert isinstance(fired, AlertFiring)
    assert fired.started_at == t0


async def test_a_resolution_that_happened_while_down_is_still_announced(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    rule = alert(window="2m", **{"for": "0s"})
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule]) as service:
        await push(js, clock.now(), 1500.0)
        await ingested(service, 1)
        await wait_for_alerts(js, 1)
    await clock.advance(30)
    await push(js, clock.now(), 200.0)  # back to normal while nobody evaluates
    await clock.advance(30)
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule]):
        await clock.tick(1)
        fired, resolved = await wait_for_alerts(js, 2)
    assert isinstance(fired, AlertFiring)
    assert isinstance(resolved, AlertResolved)
    assert resolved.fingerprint == fired.fingerprint


async def test_no_data_resolves_under_ok_and_fires_under_alert(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    quiet = alert(name="quiet_ok", window="1m", **{"for": "0s"})
    silent = alert(name="silent_source", metric="api.heartbeat", window="1m", no_data="alert")
    async with evaluator(nats_server, tmp_path, clock, alerts=[quiet, silent]) as service:
        await push(js, clock.now(), 1500.0)
        await ingested(service, 1)
        await wait_for_alerts(js, 1)
        await clock.tick(61)  # a minute without samples: both rules see no data
        events = await wait_for_alerts(js, 3)
    by_rule = {(e.rule_id, type(e).__name__) for e in events}  # type: ignore[attr-defined]
    assert by_rule == {
        ("quiet_ok", "AlertFiring"),
        ("quiet_ok", "AlertResolved"),
        ("silent_source", "AlertFiring"),
    }


async def test_a_flapping_series_fires_once_and_resolves_once_with_keep_firing_for(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    rule = alert(window="1m", keep_firing_for="2m", **{"for": "0s"})
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule]) as service:
        for i, value in enumerate([1500.0, 200.0, 1600.0, 300.0, 1700.0, 100.0]):
            await push(js, clock.now(), value)
            await ingested(service, i + 1)
            await clock.tick(20)
        assert [type(e).__name__ for e in await announced(js)] == ["AlertFiring"]
        for _ in range(6):
            await push(js, clock.now(), 100.0)
            await clock.tick(20)
        events = await wait_for_alerts(js, 2)
    assert [type(e).__name__ for e in events] == ["AlertFiring", "AlertResolved"]


async def wait_for_alerts(js: JetStreamContext, count: int) -> list[BusEvent]:
    found: list[BusEvent] = []

    async def enough() -> bool:
        found[:] = await announced(js)
        return len(found) >= count

    await wait_until(enough, timeout=20, message=f"{count} alert event(s)")
    assert len(found) == count, found
    return found
