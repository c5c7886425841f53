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

from hms_contracts import (
    AlertFiring,
    AlertResolved,
    MetricSampleBatch,
    SlaBreached,
    SloStatusReported,
    catalogue,
    specs,
)
from hms_contracts.bus import BusEvent
from hms_contracts.config import Alert, Job, Slo, parse_object
from hms_evaluator.adapters import SqliteLedger, StaticConfig
from hms_evaluator.app import LEDGER_FILE, create_service
from hms_evaluator.core.rules import RuleEngine
from hms_evaluator.core.samples import sample as make_sample
from hms_evaluator.evaluation import Evaluation
from hms_evaluator.settings import EvaluatorSettings
from hms_kit import FakeClock, Service, ensure_stream
from hms_ops.configstore import ConfigStore
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
        lambda: (e := service.broker.context.get("evaluation")) is not None and e.read >= count,
        timeout=20,
        message=f"{count} samples read",
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


# --- SLOs, deadlines, the registry and bad input -------------------------------------------


async def push_counters(js: JetStreamContext, at: datetime, good: float, total: float) -> None:
    samples = [
        {"name": "filings.ok", "value": good, "observed_at": at},
        {"name": "filings.all", "value": total, "observed_at": at},
    ]
    batch = MetricSampleBatch.create(
        namespace=NS, occurred_at=at, source=f"c{next(_unique)}", origin="push", samples=samples
    )
    await js.publish(batch.subject(), batch.model_dump_json().encode())


def filings_slo(name: str, **fields: Any) -> Slo:
    doc = {"good": "filings.ok", "total": "filings.all", "min_events": 50}
    burn = [{"long": "10m", "short": "2m", "factor": 10, "severity": "critical"}]
    return Slo.model_validate(
        {"namespace": NS, "name": name, "objective": 99, "burn_alerts": burn, **doc, **fields}
    )


async def test_a_synthetic_budget_burn_fires_the_burn_rate_alert_and_turns_the_badge(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    slo = filings_slo("filings_within_2s")
    async with evaluator(nats_server, tmp_path, clock, slos=[slo]) as service:
        good = total = 0.0
        for minute in range(14):
            errors = 0.5 if minute >= 10 else 0.0  # 10 healthy minutes, then half fail
            total += 100
            good += 100 * (1 - errors)
            await push_counters(js, clock.now(), good, total)
            await ingested(service, 2 * (minute + 1))
            await clock.tick(60)
        alerts = await wait_for_alerts(js, 1)
        statuses = await announced(js, specs.SLOS.name)
    [fired] = alerts
    assert isinstance(fired, AlertFiring)
    assert fired.rule_id == "filings_within_2s:burn_10m_2m"
    assert fired.labels["slo"] == "filings_within_2s"
    assert fired.value > 10
    colours = [s.status for s in statuses if isinstance(s, SloStatusReported)]
    assert colours[0] == "green"
    assert colours[-1] in ("yellow", "red")


async def test_low_traffic_does_not_page_on_a_few_failures(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    slo = filings_slo("rare_filings")
    async with evaluator(nats_server, tmp_path, clock, slos=[slo]) as service:
        good = total = 0.0
        for minute in range(12):
            total += 2  # two filings a minute: 24 in the long window, below 50
            good += 0 if minute >= 8 else 2  # then every one fails
            await push_counters(js, clock.now(), good, total)
            await ingested(service, 2 * (minute + 1))
            await clock.tick(60)
        tracker = next(iter(evaluation_of(service).slos.trackers.values()))
        assert tracker.sums(600, clock.now().timestamp())[1] < 50
    assert [e for e in await announced(js) if isinstance(e, AlertFiring)] == []


def hourly_job(name: str) -> Job:
    return Job.model_validate(
        {
            "namespace": NS,
            "name": name,
            "schedule": "0 * * * *",
            "queue": f"{name}_q",
            "sla_minutes": 30,
            "command": ["true"],
        }
    )


async def test_a_dead_scheduler_is_a_not_fired_breach_before_the_deadline_passes_unnoticed(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    slot = start_of_minute().replace(minute=0) + timedelta(hours=1)
    clock = TickingClock(slot - timedelta(minutes=5))
    fired_job, idle_job = hourly_job("nightly_export"), hourly_job("claims_sweep")
    waiting = idle_job.run_at(slot, slot)  # enqueued, but no worker takes it
    await js.publish(
        waiting.subject(), waiting.model_dump_json().encode(), headers={"Nats-Msg-Id": "w"}
    )
    async with evaluator(nats_server, tmp_path, clock, jobs=[fired_job, idle_job]):
        await clock.tick(5 * 60)  # the slot
        await clock.tick(29 * 60)
        assert await announced(js) == []
        await clock.tick(60)  # the deadline: nothing started
        breaches = await wait_for_alerts(js, 2)
    by_job = {b.job_id: b for b in breaches if isinstance(b, SlaBreached)}
    assert by_job["nightly_export"].reason == "not_fired"
    assert by_job["claims_sweep"].reason == "queue_wait"
    assert by_job["nightly_export"].subject() == f"sla.breach.{NS}"
    assert by_job["nightly_export"].deadline == slot + timedelta(minutes=30)


async def test_rules_come_from_the_registry_and_a_change_is_followed_without_restart(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    service = create_service(
        EvaluatorSettings(nats_url=nats_server.url, state_dir=tmp_path, heartbeat_interval_s=60),
        clock=clock,
    )
    async with running(service):
        await wait_until(lambda: service.broker.context.get("evaluation") is not None, timeout=20)
        store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="test")
        await store.apply([alert(**{"for": "0s"})])
        await wait_until(lambda: service.config.objects("alert"), timeout=20)
        await clock.tick(1)
        assert len(evaluation_of(service).engine.rules) == 1
        await push(js, clock.now(), 5000.0)
        [fired] = await wait_for_alerts(js, 1)
    assert isinstance(fired, AlertFiring)


async def test_a_batch_that_speaks_for_another_namespace_is_dead_lettered(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    async with evaluator(nats_server, tmp_path, clock, alerts=[alert(**{"for": "0s"})]) as svc:
        forged = MetricSampleBatch.create(
            namespace="ssa",
            occurred_at=clock.now(),
            source="forged",
            origin="push",
            samples=[{"name": "api.latency_p99", "value": 5000, "observed_at": clock.now()}],
        )
        await js.publish(f"ops.metric.{NS}.forged", forged.model_dump_json().encode())
        await js.publish(f"ops.metric.{NS}.junk", b"{not json")
        await wait_until(
            lambda: (
                svc.metrics.registry.get_sample_value(
                    "hms_messages_total",
                    {"consumer": "evaluator_metrics", "outcome": "dead_lettered"},
                )
                == 2
            ),
            timeout=20,
        )
        dlq = await js.stream_info(specs.DLQ.name)
        assert dlq.state.messages == 2
        assert evaluation_of(svc).engine.ingested == 0
    assert await announced(js) == []


async def test_an_announcement_stored_but_not_yet_published_goes_out_on_the_next_start(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    engine = RuleEngine()
    rule = alert(**{"for": "0s"})
    engine.set_rules([rule], clock.now().timestamp())
    batch = [make_sample("api.latency_p99", 5000.0, clock.now())]
    [fired] = engine.evaluate(engine.ingest(NS, batch), clock.now().timestamp())
    ledger = SqliteLedger(tmp_path / LEDGER_FILE)
    await ledger.commit(engine.drain_dirty(), [fired.event])  # then the process died
    await ledger.close()
    await push(js, clock.now(), 5000.0)  # the sample it read (the replay reads it back)
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule]) as service:
        [sent] = await wait_for_alerts(js, 1)
        [binding] = evaluation_of(service).engine.bindings()
        assert binding.state.phase == "firing"  # restored, not fired again
    assert sent == fired.event


async def test_slo_counts_survive_a_restart_and_the_replay_does_not_count_them_twice(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    await streams(js)
    clock = TickingClock(start_of_minute())
    slo = filings_slo("filings_within_2s")
    rule = alert(window="10m")  # a rule, so the restart replays the stream
    good = total = 0.0
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule], slos=[slo]) as service:
        for minute in range(4):
            total += 100
            good += 99
            await push_counters(js, clock.now(), good, total)
            await ingested(service, 2 * (minute + 1))
            await clock.tick(60)
        [tracker] = evaluation_of(service).slos.trackers.values()
        before = tracker.sums(3600, clock.now().timestamp())
    assert before == (297.0, 300.0)
    async with evaluator(nats_server, tmp_path, clock, alerts=[rule], slos=[slo]) as service:
        [tracker] = evaluation_of(service).slos.trackers.values()
        assert tracker.sums(3600, clock.now().timestamp()) == before
        total += 100
        good += 50
        replayed = evaluation_of(service).read
        await push_counters(js, clock.now(), good, total)
        await ingested(service, replayed + 2)
        assert tracker.sums(3600, clock.now().timestamp()) == (347.0, 400.0)
