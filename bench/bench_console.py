"""The console: how fast the dashboard paints, how fast an incident reaches an open page, and
how the API holds up under 50 concurrent clients.

The console runs as its own process (``python -m hms_console``) against the run's server, over
a namespace seeded with a week of metric samples (one a minute; ``--quick``: one every ten
minutes) and 50 incidents.

- ``dashboard_paint_ms``: first contentful paint of ``/dashboard/<ns>`` in Debian's chromium
  (the browser's performance timing), median of the repetitions. Target: at most 1000 ms.
  Without chromium the figure is skipped with a note on stderr.
- ``live_p99_ms``: from an ``IncidentOpened`` published on the bus to its event on the page's
  server-sent-event stream (read by an SSE client), p99. Target: at most 1000 ms.
- ``api_p99_ms``: the incidents and metrics endpoints, 50 clients at once, p99. Target: at
  most 50 ms.

Baseline: the raw core request/reply p99 of the same run, in ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
from hms_console.tokens import KvTokens, new_token, open_bucket
from hms_contracts import IncidentOpened, MetricSampleBatch, specs
from hms_contracts.config import Alert, Metric
from hms_kit.provision import provision
from hms_ops.configstore import ConfigStore

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, percentile, rounded_runs

log = logging.getLogger(__name__)

BENCH = "console"
CHROMIUM = os.environ.get("HMS_CHROMIUM", "/usr/bin/chromium")
CLIENTS = 50
METRIC = "api.latency_p99"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _seed(ctx: BenchContext, ns: str) -> str:
    """Config, a week of samples, 50 incidents; returns a viewer token."""
    async with base.connected(ctx.url) as nc:
        js = nc.jetstream()
        await provision(js, streams=specs.STREAMS, buckets=specs.KV_BUCKETS)
        kv = await js.key_value(specs.CONFIG.bucket)
        await ConfigStore(kv, author="bench").apply(
            [
                Metric(namespace=ns, name=METRIC, unit="ms", source="https://benefits.gov/api"),
                Alert.model_validate(
                    {"namespace": ns, "name": "sla_latency", "metric": METRIC,
                     "condition": "> 1000", "window": "5m"}
                ),
            ]
        )  # fmt: skip
        step = timedelta(minutes=10 if ctx.quick else 1)
        now = datetime.now(UTC)
        at, samples = now - timedelta(days=7), []
        while at < now:
            samples.append(
                {"name": METRIC, "value": 300 + (at.minute % 13) * 50, "unit": "ms",
                 "observed_at": at}
            )  # fmt: skip
            at += step
        acks = []
        for i in range(0, len(samples), 1000):
            batch = MetricSampleBatch.create(
                namespace=ns,
                occurred_at=now,
                source="seed",
                origin="push",
                samples=samples[i : i + 1000],
            )
            acks.append(
                js.publish(
                    batch.subject(),
                    batch.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": batch.event_id},
                )
            )
        for i in range(50):
            event = _incident(ns, f"seed-{i}")
            acks.append(
                js.publish(
                    event.subject(),
                    event.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": event.event_id},
                )
            )
        await asyncio.gather(*acks)
        token, record = new_token("bench", "viewer", ns)
        await KvTokens(await open_bucket(js, create=True)).put(record)
        log.info("seeded %s: %d samples, 50 incidents", ns, len(samples))
        return token


def _incident(ns: str, incident_id: str) -> IncidentOpened:
    return IncidentOpened.create(
        namespace=ns,
        occurred_at=datetime.now(UTC),
        incident_id=incident_id,
        title=f"p99 latency high ({incident_id})",
        severity="critical",
        cause="manual",
    )


@asynccontextmanager
async def _console(ctx: BenchContext, state: Path) -> AsyncIterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "HMS_CONSOLE_NATS_URL": ctx.url,
        "HMS_CONSOLE_API_PORT": str(port),
        "HMS_CONSOLE_STATE_DIR": str(state),
        "HMS_CONSOLE_METRIC_WINDOW_S": str(7 * 86400),
        "HMS_CONSOLE_HEARTBEAT_INTERVAL_S": "30",
        "HMS_CONSOLE_LOG_LEVEL": "WARNING",
    }
    log_file = (state / "console.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hms_console", env=env, stdout=log_file, stderr=log_file
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/login")).status_code == 200:
                        break
                if proc.returncode is not None:
                    tail = (state / "console.log").read_text()[-2000:]
                    raise RuntimeError(f"the console exited:\n{tail}")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the console did not start in 30 s")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
        log_file.close()


async def _wait_projected(url: str, ns: str, token: str, incidents: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
        for _ in range(600):
            r = await http.get(f"/api/v1/namespaces/{ns}/incidents")
            if r.status_code == 200 and len(r.json()) >= incidents:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the console did not project the seeded incidents")


def _have_chromium() -> bool:
    return shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists()


async def _paint(url: str, ns: str, token: str, repeats: int) -> list[float] | None:
    if not _have_chromium():
        print(f"console/dashboard_paint_ms skipped: no chromium at {CHROMIUM}", file=sys.stderr)
        return None
    from playwright.async_api import async_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    runs: list[float] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            context = await browser.new_context(
                extra_http_headers={"Authorization": f"Bearer {token}"}
            )
            page = await context.new_page()
            await page.goto(f"{url}/dashboard/{ns}")  # warm-up
            for _ in range(repeats):
                await page.goto(f"{url}/dashboard/{ns}", wait_until="load")
                paint = await page.evaluate(
                    """() => { const e = performance.getEntriesByName('first-contentful-paint');
                       return e.length ? e[0].startTime : null; }"""
                )
                if paint is not None:
                    runs.append(float(paint))
        finally:
            await browser.close()
    return runs


async def _live(ctx: BenchContext, url: str, ns: str, token: str, count: int) -> list[float]:
    arrived: dict[str, float] = {}
    ready = asyncio.Event()

    async def listen() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=None) as http,
            http.stream("GET", f"/dashboard/{ns}/live") as stream,
        ):
            ready.set()
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    if "incident_id" in data:
                        arrived.setdefault(data["incident_id"], time.perf_counter())

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.2)
    latencies: list[float] = []
    async with base.connected(ctx.url) as nc:
        js = nc.jetstream()
        for i in range(count):
            event = _incident(ns, f"live-{uuid.uuid4().hex[:8]}-{i}")
            sent = time.perf_counter()
            await js.publish(
                event.subject(),
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": event.event_id},
            )
            for _ in range(2000):
                if event.incident_id in arrived:
                    break
                await asyncio.sleep(0.001)
            else:
                raise RuntimeError(f"{event.incident_id} never reached the page")
            latencies.append((arrived[event.incident_id] - sent) * 1000)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        await task
    return latencies


async def _api(url: str, ns: str, token: str, total: int) -> list[float]:
    """``CLIENTS`` clients, each with its own keep-alive connection, one request at a time
    (aiohttp: a lighter client than httpx, so the figure is the server's more than ours)."""
    paths = [
        f"/api/v1/namespaces/{ns}/incidents",
        f"/api/v1/namespaces/{ns}/metrics/{METRIC}?since_s=3600",
    ]
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:

        async def client(k: int) -> None:
            for i in range(total // CLIENTS):
                t0 = time.perf_counter()
                async with http.get(paths[(i + k) % 2]) as r:
                    await r.read()
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if r.status != 200:
                        raise RuntimeError(f"{r.status} from the API")

        await asyncio.gather(*(client(k) for k in range(CLIENTS)))  # warm
        latencies.clear()
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    return latencies


async def run(ctx: BenchContext) -> list[Record]:
    out: list[Record] = []
    ns = f"bench_console_{uuid.uuid4().hex[:8]}"
    token = await _seed(ctx, ns)
    base_us = ctx.baselines.get(base.REQREP_P99)
    base_ms = None if base_us is None else base_us / 1000

    def vs(value: float) -> dict[str, float | None]:
        ratio = None if not base_ms else round(value / base_ms, 3)
        return {"baseline": base_ms, "ratio": ratio}

    with tempfile.TemporaryDirectory(prefix="hms-bench-console-") as tmp:
        async with _console(ctx, Path(tmp)) as url:
            await _wait_projected(url, ns, token, 50)
            paints = await _paint(url, ns, token, ctx.repeats)
            if paints:
                value = statistics.median(paints)
                out.append(
                    emit(BENCH, "dashboard_paint_ms", value, "ms", **vs(value),
                         runs=rounded_runs(paints), samples_week=True)
                )  # fmt: skip
            n = ctx.n(300, 60)
            live = sorted(await _live(ctx, url, ns, token, n))
            value = percentile(live, 99)
            out.append(
                emit(BENCH, "live_p99_ms", value, "ms", **vs(value), n=n,
                     p50=round(percentile(live, 50), 2))
            )  # fmt: skip
            total = ctx.n(5000, 1000)
            api = sorted(await _api(url, ns, token, total))
            value = percentile(api, 99)
            out.append(
                emit(BENCH, "api_p99_ms", value, "ms", **vs(value), n=len(api),
                     clients=CLIENTS, p50=round(percentile(api, 50), 2))
            )  # fmt: skip
    return out


__all__ = ["run"]
