"""A 3-node NATS cluster with R3 streams survives a node killed with -9: nothing acknowledged is
lost, work goes on, and the node catches up when it comes back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hms_contracts as ev
import nats
import pytest
from hms_contracts import specs
from hms_kit.publish import headers_for
from hms_kit.settings import env_prefix
from hms_testing.cluster import LocalCluster, local_streams
from hms_testing.probe import SERVICE, ProbeItem, database_path, read_done
from hms_testing.processes import ServiceLauncher
from hms_testing.samples import NS, T0
from hms_testing.waiting import wait_until
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamInfo

pytestmark = pytest.mark.slow

RUNS_PER_PHASE = 60
BATCHES_PER_PHASE = 30


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path / "cluster")
    try:
        c.start()
        yield c
    finally:
        c.stop()


async def _connect(urls: list[str], name: str) -> Client:
    return await nats.connect(
        urls, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2
    )


@pytest.fixture
async def admin(cluster: LocalCluster) -> AsyncIterator[Client]:
    nc = await _connect(cluster.urls, "hms-test-admin")
    try:
        yield nc
    finally:
        await nc.close()


def item(i: int) -> ProbeItem:
    """A work item on the work queue (``job.run.<ns>.probe_q``) with its deterministic id."""
    return ProbeItem(event_id=f"{NS}-{i}", occurred_at=T0, namespace=NS, item=i)


def batch(i: int) -> ev.MetricSampleBatch:
    samples = [
        ev.MetricSample(name="api.latency_p99", value=float(i * 10 + k), unit="ms", observed_at=T0)
        for k in range(10)
    ]
    return ev.MetricSampleBatch.create(
        namespace=NS, occurred_at=T0, source="benefits_portal", origin="push", samples=samples
    )


async def publish_until_acked(
    js: JetStreamContext, event: ProbeItem | ev.MetricSampleBatch
) -> PubAck:
    """A producer's loop: publish with the event's Nats-Msg-Id until the stream acknowledges
    it (an election in progress answers with a timeout or 'no responders'; the retry dedupes)."""
    for _ in range(100):
        try:
            ack = await js.publish(
                event.subject(), event.model_dump_json().encode(), headers=headers_for(event)
            )
            return ack
        except nats.errors.Error:  # timeout, no responders, no stream response, API error
            await asyncio.sleep(0.2)
    raise AssertionError(f"{event.event_id} never acknowledged")


async def test_three_node_cluster_survives_a_killed_node(
    cluster: LocalCluster, admin: Client, tmp_path: Path
) -> None:
    js = admin.jetstream(timeout=5)
    # hms-ops provision, as an operator runs it against the cluster (every node's URL)
    await wait_until(
        lambda: _provisioned(cluster.url), timeout=60, interval=1, message="hms-ops provision"
    )
    info = await stream_info(js, "JOB_RUNS")
    assert info.config.num_replicas == 3
    assert info.cluster is not None
    assert len(info.cluster.replicas or []) == 2
    assert (await stream_info(js, "KV_hms_leases")).config.num_replicas == 3

    # a real service process on the kit, given every node's URL: it pulls the work queue in
    # batches, commits each batch to SQLite, then acks (the probe replaces worker_pool's durable:
    # a work queue takes one consumer per subject)
    await js.delete_consumer("JOB_RUNS", specs.WORKER_RUNS.durable)
    launcher = ServiceLauncher(tmp_path / "services", cluster.url)
    published: set[str] = set()
    metric_ids: set[str] = set()
    try:
        worker = await launcher(
            "hms_testing.probe",
            service=SERVICE,
            env={env_prefix(SERVICE) + "STREAM_REPLICAS": "3"},
            timeout=40,
        )
        db = database_path(worker.state_dir)

        async def phase(first: int) -> None:
            for i in range(first, first + RUNS_PER_PHASE):
                await publish_until_acked(js, item(i))
                published.add(item(i).event_id)
            for i in range(first, first + BATCHES_PER_PHASE):
                await publish_until_acked(js, batch(i))
                metric_ids.add(batch(i).event_id)

        await phase(0)
        # kill -9 the node that leads the work queue: a leader election under load
        leader = (await stream_info(js, "JOB_RUNS")).cluster.leader  # type: ignore[union-attr]
        victim = cluster.node(str(leader))
        victim.kill()
        await phase(RUNS_PER_PHASE)

        # every acknowledged run is worked, on the two nodes left, each once in the ledger
        await wait_until(
            lambda: published <= set(read_done(db)),
            timeout=60,
            interval=0.5,
            message="every acknowledged run worked after the kill",
        )
        assert sorted(read_done(db)) == sorted(published)

        # a write refused during the election may have marked it degraded: it recovers alone
        async def healthy() -> bool:
            status, _ = await worker.healthz()
            return status == 200

        await wait_until(healthy, timeout=30, interval=0.5, message="the service healthy again")
        new_leader = (await stream_info(js, "JOB_RUNS")).cluster.leader  # type: ignore[union-attr]
        assert new_leader != victim.name
        metrics = await stream_info(js, "METRICS")
        assert metrics.state.messages == len(metric_ids) == 2 * BATCHES_PER_PHASE

        # the node comes back on its own disk and catches up with what it missed
        await asyncio.to_thread(victim.restart)
        await asyncio.to_thread(cluster.wait_healthy, [victim], 60)

        async def caught_up() -> bool:
            for name, expected in (("METRICS", 2 * BATCHES_PER_PHASE), ("JOB_RUNS", 0)):
                peers = (await stream_info(js, name)).cluster
                assert peers is not None
                mine = [p for p in peers.replicas or [] if p.name == victim.name]
                if peers.leader != victim.name and not (mine and mine[0].current):
                    return False
                here = (await asyncio.to_thread(local_streams, victim)).get(name)
                if here is None or here["state"]["messages"] != expected:
                    return False
            return True

        await wait_until(caught_up, timeout=60, interval=0.5, message="restarted node current")
        # each run stored once (the retried publishes deduped), kept until acked, then gone
        runs = (await stream_info(js, "JOB_RUNS")).state
        assert runs.last_seq == len(published) == 2 * RUNS_PER_PHASE
        await wait_until(
            lambda: _empty(js, "JOB_RUNS"), timeout=30, message="every run acknowledged"
        )
    finally:
        launcher.close()


async def _provisioned(url: str) -> bool:
    """``hms-ops provision --replicas 3``; False while the cluster elects its meta leader."""
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hms_ops", "provision", "--replicas", "3", "--nats-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.returncode == 0


async def _empty(js: JetStreamContext, stream: str) -> bool:
    return (await stream_info(js, stream)).state.messages == 0


async def stream_info(js: JetStreamContext, name: str) -> StreamInfo:
    """Stream info, asked again while an election leaves the stream without a leader."""

    async def ask() -> StreamInfo | None:
        try:
            return await js.stream_info(name)
        except nats.errors.Error:
            return None

    return await wait_until(ask, timeout=30, interval=0.2, message=f"stream info of {name}")
