"""Scraping real endpoints: a prometheus_client app (counters, gauges, histograms, summaries), a
registered metric with a URL source, a dead and a slow target that delay nobody, and Debian's
prometheus-node-exporter when it is installed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import pytest
from aiohttp import web
from hms_contracts import specs
from hms_contracts.config import ConfigObject, Metric, ScrapeTarget
from hms_contracts.metrics import MetricQueryResult
from hms_kit import Service
from hms_metrics_collector.exposition import ExpositionError, Target, parse
from hms_metrics_collector.scraper import ScrapeReport
from hms_ops.configstore import ConfigStore
from hms_testing import wait_until
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import start_http_server

NS = "usds_unemployment"
Collector = Callable[..., AbstractAsyncContextManager[Service]]
Ask = Callable[..., Awaitable[MetricQueryResult]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app_url() -> Iterator[str]:
    """A prometheus_client app serving its /metrics over HTTP in a thread."""
    registry = CollectorRegistry()
    Counter("claims_filed", "Claims filed", ["state"], registry=registry).labels("ca").inc(42)
    Gauge("api_latency_p99", "p99 latency, ms", registry=registry).set(1250)
    hist = Histogram("request_seconds", "Request time", buckets=(0.1, 0.5, 1), registry=registry)
    for v in (0.05, 0.3, 0.3, 2.0):
        hist.observe(v)
    Summary("payload_bytes", "Payload sizes", registry=registry).observe(512)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
async def slow_url() -> AsyncIterator[str]:
    """An endpoint that takes 30 s to answer (and, at /garbage, one that is not the format)."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late 1\n")

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>not metrics {</html>\n")

    app = web.Application()
    app.router.add_get("/metrics", slow)
    app.router.add_get("/garbage", garbage)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


async def register(js: JetStreamContext, *objects: ConfigObject) -> None:
    store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="ops")
    await store.apply(list(objects))


async def last(ask: Ask, series: str) -> list[float]:
    result = await ask(series=series, fn="last", range_s=60, step_s=60)
    assert result.error is None, result.error
    return [s.points[-1].value for s in result.series if s.points]


async def test_a_prometheus_client_app_is_scraped_and_dead_or_slow_targets_delay_nobody(
    collector: Collector, ask: Ask, js: JetStreamContext, app_url: str, slow_url: str
) -> None:
    reports: list[ScrapeReport] = []
    async with collector(on_scrape=reports.append) as service:
        await register(
            js,
            ScrapeTarget(namespace=NS, name="portal", url=app_url, interval="1s", timeout="1s"),
            ScrapeTarget(
                namespace=NS,
                name="dead",
                url=f"http://127.0.0.1:{free_port()}/metrics",
                interval="1s",
                timeout="1s",
            ),
            ScrapeTarget(namespace=NS, name="slow", url=slow_url, interval="2s", timeout="1s"),
            ScrapeTarget(
                namespace=NS,
                name="garbage",
                url=slow_url.replace("/metrics", "/garbage"),
                interval="1s",
            ),
        )

        async def all_reported() -> bool:
            jobs = {r.target.job for r in reports}
            portal = [r for r in reports if r.target.job == "portal"]
            return jobs == {"portal", "dead", "slow", "garbage"} and len(portal) >= 4

        await wait_until(all_reported, timeout=30, message="every target scraped")
        portal = [r for r in reports if r.target.job == "portal"]
        assert all(r.up for r in portal)
        # the slow target timed out at 1 s each time while the portal kept its 1 s slots
        assert max(r.delay_s for r in portal) < 0.5
        slow = [r for r in reports if r.target.job == "slow"]
        assert not any(r.up for r in slow)
        assert all(0.9 < r.duration_s < 2.5 for r in slow)

        async def stored() -> bool:
            return await last(ask, 'up{job="slow"}') == [0.0]

        await wait_until(stored, timeout=20, message="the scrapes stored")
        assert await last(ask, 'up{job="portal"}') == [1.0]
        assert await last(ask, 'up{job="dead"}') == [0.0]
        assert await last(ask, 'up{job="garbage"}') == [0.0]
        malformed = {"reason": "malformed"}
        assert service.metrics.registry.get_sample_value(
            "hms_metrics_batches_rejected_total", malformed
        )
        instance = app_url.split("/")[2]
        assert await last(ask, f'claims_filed_total{{state="ca",instance="{instance}"}}') == [42]
        assert await last(ask, 'request_seconds_bucket{le="0.5",job="portal"}') == [3.0]
        assert await last(ask, 'request_seconds_bucket{le="+Inf",job="portal"}') == [4.0]
        assert await last(ask, "request_seconds_count") == [4.0]
        assert await last(ask, "payload_bytes_sum") == [512.0]
        [duration] = await last(ask, 'scrape_duration_seconds{job="slow"}')
        assert duration >= 0.9
        [scraped] = await last(ask, 'scrape_samples_scraped{job="portal"}')
        assert scraped > 10


async def test_a_registered_metric_with_a_url_source_is_scraped_under_its_own_name(
    collector: Collector, ask: Ask, js: JetStreamContext, app_url: str
) -> None:
    async with collector():
        await register(
            js,
            Metric(
                namespace=NS,
                name="api.latency_p99",
                unit="ms",
                source=app_url,
                scrape_interval="1s",
            ),
        )

        async def scraped() -> list[float]:
            return await last(ask, "api.latency_p99")

        assert await wait_until(scraped, timeout=20, message="the metric scraped") == [1250.0]
        result = await ask(series="api.latency_p99", fn="last", range_s=60, step_s=60)
        assert result.series[0].labels["job"] == "api.latency_p99"


@pytest.mark.slow
async def test_debians_node_exporter_is_scraped(
    collector: Collector, ask: Ask, js: JetStreamContext
) -> None:
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        pytest.skip("prometheus-node-exporter is not installed (apt-get install it; .ci/run does)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with collector():
            url = f"http://127.0.0.1:{port}/metrics"
            await register(js, ScrapeTarget(namespace=NS, name="node", url=url, interval="2s"))

            async def up() -> list[float]:
                return await last(ask, 'up{job="node"}')

            assert await wait_until(up, timeout=30, message="node exporter scraped") == [1.0]
            [scraped] = await last(ask, 'scrape_samples_scraped{job="node"}')
            assert scraped > 100

            async def cpu_rate() -> list[float]:
                got = await ask(series='node_cpu_seconds_total{mode="idle"}', fn="rate", step_s=60)
                return [p.value for s in got.series for p in s.points]

            # two scrapes give a rate: idle seconds per second, per CPU, within [0, 1.5]
            rates = await wait_until(cpu_rate, timeout=30, message="a CPU rate")
            assert all(0 <= r <= 1.5 for r in rates)
            assert await last(ask, "node_load1")
    finally:
        proc.terminate()
        proc.wait(10)


# --- the exposition parser ----------------------------------------------------------------

TARGET = Target(
    key="ns.scrape_target.t",
    namespace="ns",
    job="t",
    url="http://127.0.0.1:9100/metrics",
    interval_s=1,
    timeout_s=1,
    labels={"env": "prod"},
    sample_limit=5,
)


def test_exposed_labels_that_clash_with_the_targets_are_kept_as_exported() -> None:
    parsed = parse('a{job="mine",env="dev"} 1\n', TARGET)
    [(name, labels, value, at)] = parsed.samples
    assert labels == {
        "job": "t",
        "exported_job": "mine",
        "env": "prod",
        "exported_env": "dev",
        "instance": "127.0.0.1:9100",
    }
    assert (name, value, at) == ("a", 1.0, None)


def test_nan_samples_are_refused_one_by_one_and_timestamps_are_honoured() -> None:
    text = '# TYPE s summary\ns{quantile="0.5"} NaN\ns_count 0\nrecord:rate5m 2 1700000000000\n'
    parsed = parse(text, TARGET)
    assert parsed.refused == {"non_finite": 1}
    assert [(n, v, at) for n, _, v, at in parsed.samples] == [
        ("s_count", 0.0, None),
        ("record_rate5m", 2.0, 1_700_000_000_000),
    ]


@pytest.mark.parametrize(
    "text",
    ["garbage here {\n", 'a{b="unterminated} 1\n', "a 1\n" * 6],
)
def test_malformed_text_or_too_many_samples_fail_the_scrape(text: str) -> None:
    with pytest.raises(ExpositionError):
        parse(text, TARGET)


def test_a_scrape_target_checks_its_url_and_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ScrapeTarget(namespace=NS, name="x", url="http://h/metrics", interval="1s", timeout="5s")
    with pytest.raises(ValueError, match="url"):
        ScrapeTarget(namespace=NS, name="x", url="file:///etc/passwd")
