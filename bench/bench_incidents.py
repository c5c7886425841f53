"""The incident engine under a stream of alerts, against the raw request/reply latency of the
same run.

1,000 alerts/s (``--quick``: for 1 s, else 5 s) across 100 fingerprints, each fingerprint firing
again and again: the first firing of each opens an incident whose playbook (one ``run`` step,
``true``) starts at once; the rest are re-fires the engine must recognise as the same problem.
An engine runs in this process (its SQLite in a temporary folder) and a core subscriber takes
the time each incident event arrives.

- ``open_p50_ms``, ``open_p99_ms``: from publishing the alert that opened an incident to its
  ``ops.incident.<ns>.opened`` arriving.
- ``first_step_p50_ms``, ``first_step_p99_ms``: from the same publish to the playbook's first
  ``ops.incident.<ns>.step`` (started) arriving.

Each is the median over the repetitions of that repetition's percentile; the baseline is the
core request/reply p50 (``reqrep_p50``, in ms), the floor of any round trip through the bus.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hms_contracts import AlertFiring, IncidentOpened, IncidentStepRan, specs, subjects
from hms_contracts.config import Alert, Playbook
from hms_incident_engine.app import create_service
from hms_incident_engine.engine import StaticConfig
from hms_incident_engine.settings import IncidentEngineSettings
from hms_kit import ensure_stream
from hms_kit.publish import headers_for
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, percentile, rounded_runs

log = logging.getLogger(__name__)

BENCH = "incidents"
RATE = 1000
FINGERPRINTS = 100
T0 = datetime(2026, 11, 25, tzinfo=UTC)


def _alert(ns: str, fp: int, n: int) -> AlertFiring:
    return AlertFiring.create(
        namespace=ns,
        occurred_at=T0 + timedelta(milliseconds=n + 1),
        rule_id="latency",
        metric="api.latency_p99",
        fingerprint=f"{fp:016x}",
        value=1450.0,
        operator=">",
        threshold=1000.0,
        severity="critical",
        summary="p99 latency high",
        labels={"series": str(fp)},
        # a new episode each time: a new event the engine must fold into the open incident
        started_at=T0 + timedelta(milliseconds=n + 1),
        for_s=0.0,
    )


WARM_UP = FINGERPRINTS  # its own fingerprint, series and incident: the first one is slow


async def _warm_up(
    js: JetStreamContext,
    ns: str,
    opened_at: dict[str, tuple[str, float]],
    step_at: dict[str, float],
) -> None:
    """One alert through the whole path before measuring (imports, the SQLite schema)."""
    alert = _alert(ns, WARM_UP, -1)
    await js.publish(alert.subject(), alert.model_dump_json().encode(), headers=headers_for(alert))
    deadline = time.monotonic() + 30
    while not step_at:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up alert started no playbook within 30 s")
        await asyncio.sleep(0.01)
    opened_at.clear()
    step_at.clear()


async def _drained(js: JetStreamContext) -> None:
    deadline = time.monotonic() + 60
    while True:
        info = await js.consumer_info(specs.INCIDENT_ALERTS.stream, specs.INCIDENT_ALERTS.durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine left {info.num_pending} alerts untaken")
        await asyncio.sleep(0.05)


async def one_run(url: str, seconds: float) -> tuple[list[float], list[float]]:
    """One stream of alerts into a fresh namespace; (open latencies, first-step latencies) ms."""
    ns = f"bench_{uuid.uuid4().hex[:10]}"
    objects = [
        Playbook.model_validate(
            {
                "namespace": ns,
                "name": "probe",
                # one target per series, so the blast-radius limit (runs per target per hour)
                # lets each fingerprint's run go
                "steps": [{"action": "run", "argv": ["true", "{{series}}"]}],
                "params": {"series": {"type": "integer"}},
            }
        ),
        Alert.model_validate(
            {
                "namespace": ns,
                "name": "latency",
                "metric": "api.latency_p99",
                "condition": "> 1000",
                "playbook": "probe",
            }
        ),
    ]
    total = int(RATE * seconds)
    alerts = [_alert(ns, i % FINGERPRINTS, i) for i in range(total)]
    sent_at: dict[str, float] = {}
    opened_at: dict[str, tuple[str, float]] = {}  # incident -> (cause event, time)
    step_at: dict[str, float] = {}
    done = asyncio.Event()

    async with base.connected(url) as nc:
        js = nc.jetstream()
        await ensure_stream(js, specs.ALERTS)

        async def on_incident(msg: Msg) -> None:
            now = time.perf_counter()
            if msg.subject.endswith(".opened"):
                opened = IncidentOpened.model_validate_json(msg.data)
                opened_at[opened.incident_id] = (opened.cause_event_id or "", now)
            elif msg.subject.endswith(".step"):
                step = IncidentStepRan.model_validate_json(msg.data)
                if step.status == "started" and step.step_index == 0:
                    step_at.setdefault(step.incident_id, now)
                    if len(step_at) >= FINGERPRINTS and opened_at:
                        done.set()

        await nc.subscribe(subjects.INCIDENT.wildcard(ns), cb=on_incident)
        with tempfile.TemporaryDirectory(prefix="hms-bench-incidents-") as state:
            settings = IncidentEngineSettings(
                nats_url=url,
                state_dir=Path(state),
                heartbeat_interval_s=60,
                log_level="WARNING",
                resolve_on_playbook_success=False,
            )
            service = create_service(settings, config=StaticConfig(objects))
            await service.app.start()
            try:
                deadline = time.monotonic() + 30
                while service.broker.context.get("leading_engine") is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the incident engine did not lead within 30 s")
                    await asyncio.sleep(0.05)
                await _warm_up(js, ns, opened_at, step_at)
                acks = []
                start = time.perf_counter()
                per_tick = RATE // 100  # every 10 ms
                for i in range(0, total, per_tick):
                    due = start + i / RATE
                    if (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                    for alert in alerts[i : i + per_tick]:
                        sent_at[alert.event_id] = time.perf_counter()
                        acks.append(
                            await js.publish_async(
                                alert.subject(),
                                alert.model_dump_json().encode(),
                                headers=headers_for(alert),
                            )
                        )
                await asyncio.gather(*acks)
                try:
                    await asyncio.wait_for(done.wait(), 60)
                except TimeoutError:
                    raise RuntimeError(
                        f"after 60 s: {len(opened_at)} incidents opened, {len(step_at)} first "
                        f"steps started, of {FINGERPRINTS}"
                    ) from None
                # stop only once every alert is taken: messages fetched but not acked by a
                # stopped engine would hold the next repetition's back until their ack wait
                await _drained(js)
            finally:
                await service.app.stop()
    opens = [(t - sent_at[cause]) * 1000 for cause, t in opened_at.values() if cause in sent_at]
    steps = [
        (step_at[iid] - sent_at[cause]) * 1000
        for iid, (cause, _) in opened_at.items()
        if iid in step_at and cause in sent_at
    ]
    if len(opens) != FINGERPRINTS:
        raise RuntimeError(f"{len(opens)} incidents opened for {FINGERPRINTS} fingerprints")
    return sorted(opens), sorted(steps)


async def run(ctx: BenchContext) -> list[Record]:
    seconds = 1.0 if ctx.quick else 5.0
    results = []
    for _ in range(ctx.repeats):
        results.append(await one_run(ctx.url, seconds))
    base_ms = ctx.baselines.get(base.REQREP_P50)
    baseline = None if base_ms is None else base_ms / 1000
    out: list[Record] = []
    n = int(RATE * seconds)
    for metric, index, pct in (
        ("open_p50_ms", 0, 50),
        ("open_p99_ms", 0, 99),
        ("first_step_p50_ms", 1, 50),
        ("first_step_p99_ms", 1, 99),
    ):
        runs = [percentile(r[index], pct) for r in results]
        value = statistics.median(runs)
        ratio = None if not baseline else round(value / baseline, 3)
        out.append(
            emit(
                BENCH,
                metric,
                value,
                "ms",
                baseline,
                ratio,
                n=n,
                rate=RATE,
                fingerprints=FINGERPRINTS,
                runs=rounded_runs(runs),
                sync=ctx.sync,
            )
        )
    return out
