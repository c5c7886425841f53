"""The store behind a Prometheus-compatible backend: samples remote-written (protobuf + snappy)
to Debian's prometheus started with its remote-write receiver, and queries answered through its
HTTP API with the same figures as the SQLite store (p99 checked against the standard library)."""

from __future__ import annotations

import random
import shutil
import socket
import statistics
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import cramjam
import pytest
from hms_contracts import MetricSampleBatch
from hms_contracts.metrics import MetricQuery, MetricQueryResult
from hms_kit import Service, publish
from hms_metrics_collector.core import labels_key
from hms_metrics_collector.ports import StoredBatch
from hms_metrics_collector.remote import PrometheusStore, WriteRequest, promql, write_request
from hms_metrics_collector.store import SqliteStore, ms
from hms_testing import wait_until
from nats.js import JetStreamContext

NS = "usds_unemployment"
SECOND = timedelta(seconds=1)
Collector = Callable[..., AbstractAsyncContextManager[Service]]
Ask = Callable[..., Awaitable[MetricQueryResult]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    """Debian's prometheus with its remote-write receiver, on a free port."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


async def ready(url: str) -> None:
    async def answers() -> bool:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/-/ready") as resp,
        ):
            return resp.status == 200

    await wait_until(answers, timeout=30, interval=0.2, message="prometheus ready")


@pytest.fixture
async def remote(tmp_path: Path, prometheus: str) -> AsyncIterator[PrometheusStore]:
    await ready(prometheus)
    store = PrometheusStore(SqliteStore(tmp_path / "local.sqlite3"), prometheus)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def test_a_write_request_is_snappy_protobuf_with_sorted_labels() -> None:
    batch = StoredBatch("b", NS, "push", None, [("api.latency_ms", labels_key({"z": "1"}), 5, 2.5)])
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(write_request([batch]))))
    [series] = request.timeseries
    assert [(lb.name, lb.value) for lb in series.labels] == [
        ("__name__", "api.latency_ms"),
        ("hms_namespace", NS),
        ("z", "1"),
    ]
    assert [(s.value, s.timestamp) for s in series.samples] == [(2.5, 5)]


def test_the_promql_of_a_query_quotes_everything_it_was_given() -> None:
    query = MetricQuery(series='api.latency_ms{route="/a\\"b"}', fn="p99", step_s=60)
    assert promql(NS, query) == (
        'quantile_over_time(0.99, {__name__="api.latency_ms",hms_namespace="usds_unemployment",'
        'route="/a\\"b"}[60000ms])'
    )


async def test_samples_remote_written_to_prometheus_are_queried_back_through_its_api(
    remote: PrometheusStore,
) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(seconds=50)
    latencies = [rng.gauss(400, 120) for _ in range(1000)]
    rows = [
        ("api.latency_ms", labels_key({"route": "/claims"}), ms(start) + 40 * i + 1, v)
        for i, v in enumerate(latencies)
    ]
    counts = [0, 10, 30, 5, 25]
    counter = [
        ("claims.filed_total", "{}", ms(start) + 10_000 * i, float(v)) for i, v in enumerate(counts)
    ]
    await remote.write(
        [
            StoredBatch("a", NS, "push", None, rows[:500]),
            StoredBatch("b", NS, "push", None, rows[500:] + counter),
            StoredBatch("c", "ssa", "push", None, rows[:10]),
        ]
    )
    query = MetricQuery(series='api.latency_ms{route="/claims"}', range_s=60, step_s=60, end=now)

    async def p99() -> float | None:
        found = await remote.query(NS, query.model_copy(update={"fn": "p99"}), now)
        return found[0].points[-1].value if found else None

    expected = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    assert await wait_until(p99, timeout=20, message="the samples in prometheus") == pytest.approx(
        expected
    )
    [local] = await remote.local.query(NS, query.model_copy(update={"fn": "p99"}), now)
    assert local.points[-1].value == pytest.approx(expected)
    [count] = await remote.query(NS, query.model_copy(update={"fn": "count"}), now)
    assert count.points[-1].value == 1000
    assert count.labels == {"route": "/claims"}
    [other] = await remote.query("ssa", query.model_copy(update={"fn": "count"}), now)
    assert other.points[-1].value == 10
    highest = await remote.query(
        NS, MetricQuery(series="claims.filed_total", fn="max", range_s=60, step_s=60, end=now), now
    )
    assert highest[0].points[-1].value == 30.0


async def test_a_redelivered_batch_is_written_once_and_an_expired_push_is_hidden(
    remote: PrometheusStore,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = StoredBatch("x", NS, "push", 30, [("deploy.version", "{}", ms(now) - 5000, 142.0)])
    assert await remote.write([first]) == 1
    assert await remote.write([first]) == 0
    query = MetricQuery(series="deploy.version", fn="count", range_s=60, step_s=60, end=now)

    async def counted() -> float | None:
        found = await remote.query(NS, query, now)
        return found[0].points[-1].value if found else None

    assert await wait_until(counted, timeout=20, message="the push in prometheus") == 1.0
    later = now + timedelta(seconds=40)
    assert await remote.query(NS, query.model_copy(update={"end": later}), later) == []


@pytest.mark.slow
async def test_the_collector_with_a_prometheus_backend_answers_from_it(
    collector: Collector, ask: Ask, js: JetStreamContext, prometheus: str
) -> None:
    await ready(prometheus)
    now = datetime.now(UTC)
    async with collector(scrape=False, prometheus_url=prometheus):
        batch = MetricSampleBatch.create(
            occurred_at=now,
            namespace=NS,
            source="portal",
            origin="push",
            samples=[
                {
                    "name": "api.latency_p99",
                    "value": 1250.0 + i,
                    "observed_at": now - timedelta(seconds=i),
                }
                for i in range(5)
            ],
        )
        await publish(js, batch)

        async def answered() -> list[float]:
            got = await ask(series="api.latency_p99", fn="max", range_s=60, step_s=60, end=now)
            return [p.value for s in got.series for p in s.points]

        assert await wait_until(answered, timeout=30, message="answered from prometheus") == [
            1254.0
        ]
        # the answer came from prometheus: it holds the series
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{prometheus}/api/v1/series", params={"match[]": '{__name__="api.latency_p99"}'}
            ) as resp,
        ):
            body = await resp.json()
        assert body["data"] == [{"__name__": "api.latency_p99", "hms_namespace": NS}]
