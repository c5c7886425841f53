"""Fault injection across processes: kill -9 the bus, a consumer, a leader; no acked loss."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from hms_contracts import specs
from hms_kit import provision
from hms_kit import publish as publish_event
from hms_testing import NatsHandle, ServiceLauncher, ServiceProcess, wait_until
from hms_testing.probe import ProbeItem, database_path, read_done, start_probe
from nats.js import JetStreamContext

N = 2000
WINDOW = 50


class Publisher:
    """Publishes items 0..n-1 with their ids as Nats-Msg-Id, retrying each until it is acked."""

    def __init__(self, js: JetStreamContext, pause_at: int | None = None) -> None:
        self.js = js
        # at ``pause_at`` items it stops until ``resume`` is set: the test kills the server
        # there, so the publisher's next windows land on the outage whatever the machine's pace
        self.pause_at = pause_at
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        # a namespace of its own, so a shared server (NATS_URL) cannot mix runs
        self.ns = f"acme_{secrets.token_hex(3)}"
        self.acked: set[str] = set()
        self.retries = 0

    async def run(self, n: int) -> None:
        for start in range(0, n, WINDOW):
            if self.pause_at is not None and start >= self.pause_at and not self.paused.is_set():
                self.paused.set()
                await self.resume.wait()
            pending = [
                ProbeItem(
                    event_id=f"{self.ns}-{i}",
                    occurred_at=datetime.now(UTC),
                    namespace=self.ns,
                    item=i,
                )
                for i in range(start, min(n, start + WINDOW))
            ]
            while pending:
                results = await asyncio.gather(
                    *(publish_event(self.js, e, timeout=1.0) for e in pending),
                    return_exceptions=True,
                )
                failed = [
                    e for e, r in zip(pending, results, strict=True) if isinstance(r, Exception)
                ]
                self.acked.update(e.event_id for e in pending if e not in failed)
                if failed:
                    self.retries += 1
                    await asyncio.sleep(0.1)
                pending = failed


async def assert_exactly_the_acked_items_took_effect(probe: ServiceProcess, pub: Publisher) -> None:
    db = database_path(probe.state_dir)
    assert pub.acked == {f"{pub.ns}-{i}" for i in range(N)}

    def stored() -> list[str]:
        return [row for row in read_done(db) if row.startswith(pub.ns)]

    await wait_until(
        lambda: len(stored()) >= N, timeout=30, message=f"{N} items in the probe's SQLite"
    )
    rows = stored()
    assert len(rows) == N, "each item took effect exactly once"
    assert set(rows) == pub.acked


def answers(proc: ServiceProcess, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await proc.healthz())[0] == status

    return check


@pytest.mark.slow
async def test_probe_loses_no_acked_message_when_nats_is_killed_and_restarted(
    nats_server: NatsHandle, js: JetStreamContext, start_service: ServiceLauncher
) -> None:
    probe = await start_probe(start_service, js)
    pub = Publisher(js, pause_at=N // 3)
    publishing = asyncio.create_task(pub.run(N))
    await asyncio.wait_for(pub.paused.wait(), timeout=30)

    await asyncio.to_thread(nats_server.kill)
    assert len(pub.acked) < N, "killed mid-flight"
    pub.resume.set()  # publishing on into the outage, retrying each window until acked
    await wait_until(answers(probe, 503), timeout=5, message="the probe to report the outage")
    await wait_until(lambda: pub.retries > 0, timeout=10, message="a publish to fail unacked")
    await asyncio.to_thread(nats_server.restart)
    await asyncio.wait_for(publishing, timeout=60)

    await assert_exactly_the_acked_items_took_effect(probe, pub)
    await wait_until(answers(probe, 200), timeout=10, message="the probe healthy again")
    assert await probe.metric("hms_nats_reconnects_total") > 0
    assert probe.returncode is None


@pytest.mark.slow
async def test_probe_loses_and_repeats_nothing_when_killed_and_restarted(
    js: JetStreamContext, start_service: ServiceLauncher
) -> None:
    probe = await start_probe(start_service, js)
    db = database_path(probe.state_dir)
    pub = Publisher(js, pause_at=N // 2)
    publishing = asyncio.create_task(pub.run(N))
    await wait_until(lambda: len(read_done(db)) >= N // 3, timeout=30, message="a third stored")

    probe.kill()
    killed_with = len(read_done(db))
    assert killed_with < N, "killed mid-flight"
    pub.resume.set()  # the rest arrives while the probe is down
    await probe.restart()
    await asyncio.wait_for(publishing, timeout=60)

    await assert_exactly_the_acked_items_took_effect(probe, pub)


async def leader_of(procs: list[ServiceProcess]) -> ServiceProcess | None:
    leaders = []
    for proc in procs:
        try:
            _, body = await proc.healthz()
        except Exception:
            continue
        if body.get("leader") is True:
            leaders.append(proc)
    assert len(leaders) <= 1, f"two leaders at once: {[p.instance_id for p in leaders]}"
    return leaders[0] if leaders else None


@pytest.mark.slow
async def test_standby_evaluator_takes_over_within_the_lease_ttl_when_the_leader_is_killed(
    js: JetStreamContext, start_service: ServiceLauncher
) -> None:
    # as `hms-ops up` does: every stream exists before the services start
    await provision(js, streams=specs.STREAMS)
    env = {"HMS_EVALUATOR_LEASE_RENEW_S": "0.5"}
    first = await start_service("hms_evaluator", env=env)
    second = await start_service("hms_evaluator", env=env)
    both = [first, second]
    leader = await wait_until(
        lambda: leader_of(both), timeout=specs.LEASES.ttl_s + 5, message="one leader"
    )
    standby = second if leader is first else first
    _, body = await standby.healthz()
    assert body["leader"] is False

    leader.kill()
    killed_at = time.monotonic()
    await wait_until(
        lambda: leader_of([standby]),
        timeout=specs.LEASES.ttl_s + 4,
        interval=0.2,
        message="the standby to take the lease",
    )
    took = time.monotonic() - killed_at
    assert took >= specs.LEASES.ttl_s - 3, f"took the lease after {took:.1f} s, before it lapsed"
    assert await standby.metric("hms_lease_leader") == 1
