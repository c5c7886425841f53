"""The autoscaler as a real process against a real nats-server, scaling real worker-pool
processes: a backlog of 1,000 items takes a pool from 0 to 5 workers and back to 0 with every
item done once; a scale-down with items in flight loses nothing; a kill -9 leaves the workers
running for the next instance to adopt; a missing consumer holds the pool and raises an alert;
a 5xx-rate trigger scales a pool; a playbook's scale request floors a pool for a while and an
unknown pool's request is dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hms_autoscaler.local import STATE_FILE, LocalWorker
from hms_contracts import specs, subjects
from hms_contracts.config import Job, ScalePolicy
from hms_contracts.incidents import IncidentClosed, ScaleRequested
from hms_contracts.metrics import MetricSample, MetricSampleBatch
from hms_contracts.runs import RunScheduled
from hms_kit import ensure_consumer, ensure_stream, publish, publish_many
from hms_ops.configstore import ConfigStore
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from nats.aio.client import Client
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
NS = "ssa"
#: the worker_pool durable as the test workers provision it (short ack wait, no server backoff)
CONSUMER = specs.WORKER_RUNS.model_copy(update={"ack_wait_s": 5.0, "backoff_s": ()})


def policy(**fields: Any) -> ScalePolicy:
    doc: dict[str, Any] = {"namespace": NS, "name": "ssa_workers", "min": 0, "max": 5}
    doc |= {"poll_interval": "0.5s", "idle_to_zero_after": "3s"}
    doc |= {"scale_up": {"stabilization": "0s", "workers": 4, "period": "2s"}}
    doc |= {"scale_down": {"stabilization": "2s", "percent": 100, "period": "1s"}}
    return ScalePolicy.model_validate(doc | fields)


async def apply(js: JetStreamContext, *objects: ScalePolicy) -> None:
    store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="ops")
    await store.apply(list(objects))


async def prepare(js: JetStreamContext) -> None:
    """What ``hms-ops up`` provisions before the services start."""
    for stream in (specs.JOB_RUNS, specs.JOB_EVENTS, specs.ALERTS, specs.INCIDENTS):
        await ensure_stream(js, stream)
    await ensure_consumer(js, CONSUMER)


async def start_autoscaler(
    start_service: ServiceLauncher,
    tmp_path: Path,
    *,
    state: Path | None = None,
    concurrency: str = "1",
    **extra: str,
) -> ServiceProcess:
    env = {
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "SCALE_TEST_DONE": str(tmp_path / "done.txt"),
        "SCALE_TEST_WORK_S": "0.02",
        "HMS_WORKER_POOL_ACK_WAIT_S": str(CONSUMER.ack_wait_s),
        "HMS_WORKER_POOL_CONCURRENCY": concurrency,
        "HMS_WORKER_POOL_HEARTBEAT_INTERVAL_S": "1",
        "HMS_WORKER_POOL_LOG_FORMAT": "json",
        "HMS_AUTOSCALER_WORKER_DRAIN_S": "10",
        **extra,
    }
    return await start_service(
        "hms_autoscaler", env=env, state_dir=state or tmp_path / "autoscaler"
    )


def runs(n: int, *, python: str = "scalework:work", ns: str = NS) -> list[RunScheduled]:
    job = Job.model_validate(
        {"namespace": ns, "name": "re_score", "schedule": "0 0 * * *", "queue": "q"}
        | {"python": python, "retries": 0}
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        at = t0 + timedelta(seconds=i)
        out.append(job.run_at(at, datetime.now(UTC)))
    return out


def done_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "done.txt"
    return path.read_text().splitlines() if path.exists() else []


def workers(state: Path) -> list[LocalWorker]:
    try:
        entries = json.loads((state / STATE_FILE).read_text())["workers"]
    except (FileNotFoundError, ValueError):
        return []
    return [w for w in (LocalWorker(**e) for e in entries) if w.alive()]


def running_workers(state: Path) -> list[LocalWorker]:
    return [w for w in workers(state) if not w.stopping]


class Decisions:
    """Every ScaleDecided and alert of the test's namespace, as they come."""

    def __init__(self) -> None:
        self.scale: list[dict[str, Any]] = []
        self.alerts: list[tuple[str, dict[str, Any]]] = []

    async def follow(self, nc: Client) -> None:
        async def on_scale(msg: Any) -> None:
            self.scale.append(json.loads(msg.data))

        async def on_alert(msg: Any) -> None:
            self.alerts.append((msg.subject, json.loads(msg.data)))

        await nc.subscribe(subjects.SCALE.wildcard(NS), cb=on_scale)
        await nc.subscribe(subjects.ALERT.wildcard(NS), cb=on_alert)

    def desired(self) -> list[int]:
        return [e["desired"] for e in self.scale if e["action"] != "hold"]


async def run_events(js: JetStreamContext, kind: str) -> list[dict[str, Any]]:
    """Every run event of one kind in the test's namespace so far."""
    sub = await js.pull_subscribe(
        subjects.JOB_EVENT.subject(NS, kind), stream=specs.JOB_EVENTS.name
    )
    got: list[dict[str, Any]] = []
    try:
        while True:
            try:
                got += [json.loads(m.data) for m in await sub.fetch(100, timeout=0.5)]
            except TimeoutError:
                return got
    finally:
        await sub.unsubscribe()


def reap(state: Path) -> None:
    for worker in workers(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)


async def test_a_backlog_of_1000_scales_0_to_5_and_back_to_0_with_each_item_done_once(
    start_service: ServiceLauncher, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    await prepare(js)
    seen = Decisions()
    await seen.follow(nc)
    state = tmp_path / "autoscaler"
    await start_autoscaler(start_service, tmp_path, state=state, concurrency="2")
    try:
        await apply(js, policy())
        await wait_until(lambda: seen.scale, timeout=20, message="the pool's first decision")
        assert running_workers(state) == []
        items = runs(1000)
        await publish_many(js, items)
        await wait_until(
            lambda: len(done_lines(tmp_path)) >= 1000, timeout=90, message="1000 items done"
        )
        await wait_until(
            lambda: seen.desired()[-1:] == [0] and not workers(state),
            timeout=30,
            message="the pool back at 0 workers",
        )
        lines = done_lines(tmp_path)
        assert len(lines) == 1000
        assert sorted(set(lines)) == sorted(f"{NS} {r.run_id}" for r in items)
        steps = seen.desired()
        assert max(steps) == 5
        assert 1 <= steps[0] <= 4  # the step limit: at most 4 workers per period from 0
        assert steps[-1] == 0
        ups = [e for e in seen.scale if e["action"] == "scale_up"]
        assert "backlog" in ups[0]["reason"]
        assert ups[0]["backlog"] > 0
        assert "idle" in seen.scale[-1]["reason"]
    finally:
        reap(state)


async def test_a_scale_down_with_items_in_flight_loses_nothing(
    start_service: ServiceLauncher, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    await prepare(js)
    state = tmp_path / "autoscaler"
    await start_autoscaler(start_service, tmp_path, state=state, SCALE_TEST_WORK_S="1.0")
    try:
        await apply(js, policy(min=3, max=3))
        await wait_until(lambda: len(running_workers(state)) == 3, timeout=30, message="3 up")
        items = runs(12)
        await publish_many(js, items)
        await wait_until(lambda: len(done_lines(tmp_path)) >= 3, timeout=30, message="work")
        # a new bound: two of the three workers drain with a run in hand each
        await apply(js, policy(min=1, max=1, scale_down={"stabilization": "0s"}))
        await wait_until(lambda: len(running_workers(state)) == 1, timeout=20, message="1 left")
        await wait_until(
            lambda: len(done_lines(tmp_path)) >= 12, timeout=90, message="every item done"
        )
        lines = done_lines(tmp_path)
        assert sorted(lines) == sorted(f"{NS} {r.run_id}" for r in items)
        # the drained workers handed their runs back: they ran again, as second attempts
        started = await run_events(js, "started")
        assert any(e["attempt"] == 2 for e in started)
        completed = await run_events(js, "completed")
        assert len(completed) == 12
    finally:
        reap(state)


async def test_an_autoscaler_killed_with_9_leaves_its_workers_to_the_next_which_adopts_them(
    start_service: ServiceLauncher, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    await prepare(js)
    state = tmp_path / "autoscaler"
    first = await start_autoscaler(start_service, tmp_path, state=state)
    try:
        await apply(js, policy(min=2, max=4))
        await wait_until(lambda: len(running_workers(state)) == 2, timeout=30, message="2 up")
        before = sorted(w.pid for w in running_workers(state))
        assert first.proc is not None
        os.kill(first.pid, signal.SIGKILL)  # the autoscaler alone, not its process group
        first.proc.wait()
        await asyncio.sleep(1.0)
        assert sorted(w.pid for w in running_workers(state)) == before
        second = await start_autoscaler(start_service, tmp_path, state=state)
        await wait_until(
            lambda: _leads(second), timeout=30, message="the new instance leads (the lease lapsed)"
        )

        async def decided() -> dict[str, Any] | None:
            reply = await nc.request(subjects.SCALE_STATUS, b"", timeout=5)
            pools: list[dict[str, Any]] = json.loads(reply.data)["pools"]
            return pools[0] if pools and pools[0]["last"] else None

        pool = await wait_until(decided, timeout=20, message="the new leader's first decision")
        assert pool["workers"] == 2
        assert pool["last"]["current"] == 2  # the adopted workers, counted: none started anew
        assert sorted(w.pid for w in running_workers(state)) == before
        # the adopted workers are under its control: a lower bound drains one of them
        await apply(js, policy(min=1, max=1, scale_down={"stabilization": "0s"}))
        await wait_until(lambda: len(workers(state)) == 1, timeout=30, message="one drained")
        assert {w.pid for w in workers(state)} < set(before)
        # a graceful stop drains the adopted worker too (a supervisor stopping this process's
        # group would not reach it: it is in the first instance's group)
        assert await second.terminate(timeout=20) == 0
        await wait_until(lambda: not workers(state), timeout=30, message="no worker left")
    finally:
        reap(state)


async def _leads(proc: ServiceProcess) -> bool:
    _, body = await proc.healthz()
    return bool(body.get("leader"))


async def test_a_missing_consumer_holds_the_pool_and_raises_an_alert(
    start_service: ServiceLauncher, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    await prepare(js)
    seen = Decisions()
    await seen.follow(nc)
    state = tmp_path / "autoscaler"
    proc = await start_autoscaler(start_service, tmp_path, state=state)
    try:
        await apply(js, policy(consumer="no_such_consumer", min=0, max=5))
        await wait_until(lambda: seen.alerts, timeout=20, message="an alert")
        [(subject, alert)] = seen.alerts
        assert subject == subjects.ALERT.subject(NS, "firing")
        assert "consumer JOB_RUNS/no_such_consumer not found" in alert["summary"]
        [decision] = seen.scale
        assert (decision["action"], decision["degraded"], decision["desired"]) == ("hold", True, 0)
        _, health = await proc.healthz()
        assert "ssa.ssa_workers" in str(health.get("degraded"))
        await publish_many(js, runs(50))
        await asyncio.sleep(2.0)
        assert running_workers(state) == []  # held: never a jump on an unreadable input
        await apply(js, policy(min=0, max=5))  # the right consumer: the alert resolves
        await wait_until(
            lambda: any(s.endswith(".resolved") for s, _ in seen.alerts),
            timeout=20,
            message="the alert resolved",
        )
    finally:
        reap(state)


async def test_a_5xx_rate_trigger_scales_a_pool(
    start_service: ServiceLauncher, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    await prepare(js)
    await ensure_stream(js, specs.METRICS)
    seen = Decisions()
    await seen.follow(nc)
    state = tmp_path / "autoscaler"
    await start_autoscaler(start_service, tmp_path, state=state)
    trigger = {"series": 'gateway.http_5xx_rate{route="/claims"}', "threshold": 5}
    trigger |= {"window": "10s"}
    try:
        await apply(js, policy(max=4, triggers=[trigger]))

        async def spike() -> None:
            now = datetime.now(UTC)
            samples = [
                MetricSample(name="gateway.http_5xx_rate", value=v, labels=labels, observed_at=now)
                for v, labels in [(17.0, {"route": "/claims"}), (900.0, {"route": "/other"})]
            ]
            batch = MetricSampleBatch.create(
                namespace=NS, occurred_at=now, source="gateway", origin="push", samples=samples
            )
            await publish(js, batch)

        for _ in range(20):
            await spike()
            if len(running_workers(state)) == 4:
                break
            await asyncio.sleep(0.5)
        await wait_until(lambda: len(running_workers(state)) == 4, timeout=20, message="4 up")
        up = next(e for e in seen.scale if e["action"] == "scale_up")
        assert 'gateway.http_5xx_rate{route="/claims"} 17 / 5 per worker = 4' in up["reason"]
        assert max(seen.desired()) == 4
    finally:
        reap(state)


async def test_a_playbooks_scale_request_floors_an_idle_pool_until_it_lapses_or_closes(
    start_service: ServiceLauncher, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    await prepare(js)
    await ensure_stream(js, specs.DLQ)
    seen = Decisions()
    await seen.follow(nc)
    state = tmp_path / "autoscaler"
    await start_autoscaler(
        start_service, tmp_path, state=state, HMS_AUTOSCALER_SCALE_REQUEST_FOR_S="6"
    )
    dlq = await js.pull_subscribe(subjects.dlq("ops.incident.*.scale"), stream=specs.DLQ.name)

    def request(pool: str, replicas: int, step: int, incident: str = "inc-42") -> ScaleRequested:
        return ScaleRequested.create(
            namespace=NS,
            occurred_at=datetime.now(UTC),
            incident_id=incident,
            playbook="backlog-surge",
            step_index=step,
            pool=pool,
            replicas=replicas,
        )

    try:
        await apply(js, policy())  # min 0, max 5, idle to zero after 3 s; no backlog
        await wait_until(lambda: seen.scale, timeout=20, message="the pool's first decision")
        # an unknown pool: refused with its reason, nothing scaled
        await publish(js, request("no_such_pool", 3, 0))
        [dead] = await dlq.fetch(1, timeout=20)
        assert dead.headers is not None
        reason = dead.headers["Hms-Dlq-Reason"]
        assert "pool 'no_such_pool'" in reason
        assert "no scale_policy of that name" in reason
        assert running_workers(state) == []
        assert seen.desired() == []
        # the pool's own request: 3 workers at once, though idle
        asked = request("ssa_workers", 3, 1)
        await publish(js, asked)
        await wait_until(lambda: len(running_workers(state)) == 3, timeout=20, message="3 up")
        await wait_until(lambda: seen.desired(), timeout=20, message="the scale-up announced")
        up = next(e for e in seen.scale if e["action"] == "scale_up")
        assert (up["desired"], up["floor"], up["incident_id"]) == (3, 3, "inc-42")
        assert up["playbook"] == "backlog-surge"
        assert "playbook backlog-surge (step 1) of incident inc-42 requested 3" in up["reason"]
        # idle beyond idle_to_zero_after (3 s), the floor holds; once it lapses (6 s), back to 0
        await wait_until(
            lambda: seen.desired()[-1:] == [0] and not workers(state),
            timeout=30,
            message="the pool back at 0 once the request lapsed",
        )
        assert seen.desired() == [3, 0]
        down = seen.scale[-1]
        assert down["floor"] is None
        lapsed = asked.occurred_at + timedelta(seconds=6)
        assert datetime.fromisoformat(down["occurred_at"]) >= lapsed
        assert "scaling to zero" in down["reason"]
        # another incident's request ends when its incident closes, before it lapses
        second = request("ssa_workers", 2, 1, incident="inc-43")
        await publish(js, second)
        await wait_until(lambda: len(running_workers(state)) == 2, timeout=20, message="2 up")
        await wait_until(lambda: seen.desired()[-1:] == [2], timeout=20, message="announced")
        closed = IncidentClosed.create(
            namespace=NS,
            occurred_at=datetime.now(UTC),
            incident_id="inc-43",
            resolution="resolved",
            closed_by="oncall",
            opened_at=datetime.now(UTC) - timedelta(minutes=5),
        )
        await publish(js, closed)
        await wait_until(
            lambda: seen.desired()[-1:] == [0] and not workers(state),
            timeout=30,
            message="the pool back at 0 once the incident closed",
        )
        assert seen.desired() == [3, 0, 2, 0]
        assert seen.scale[-2]["incident_id"] == "inc-43"
        released = datetime.fromisoformat(seen.scale[-1]["occurred_at"])
        assert released < second.occurred_at + timedelta(seconds=6)  # before it would lapse
    finally:
        reap(state)
