"""The metrics-collector's scrape loop: 500 targets at a 1 s interval from one collector.

- ``scrape_start_delay_p99_ms``: how late a scrape starts after its slot, p99 over every scrape
  of the window (after one interval of warm-up). Each scrape fetches one target's exposition
  over HTTP (an aiohttp server with 500 paths, in its own process), parses it with
  prometheus_client's parser and publishes its samples as a MetricSampleBatch to JetStream.
  Baseline: the same 500 slots with no work in them, in a process of their own, during the
  same window (the machine's own timer lateness: on a shared machine, CPU starvation).
- ``scrape_cpu_per_target_ms``: CPU time of the collector's process per target per second of
  the window (at a 1 s interval, CPU ms per scrape), the extra figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator

from hms_kit import SystemClock
from hms_metrics_collector.exposition import Target
from hms_metrics_collector.metrics import CollectorMetrics
from hms_metrics_collector.scraper import Scraper, ScrapeReport
from nats.js.api import StreamConfig

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, median_of, percentile, rounded_runs

log = logging.getLogger(__name__)

BENCH = "evaluation"
TARGETS = 500
INTERVAL_S = 1.0

# the targets: one process, 500 paths, each a small exposition (a counter, a gauge, a histogram)
SERVER = """
import sys
from aiohttp import web

port, count = int(sys.argv[1]), int(sys.argv[2])
hits = [0] * count

def body(i):
    hits[i] += 1
    n = hits[i]
    return (
        "# TYPE http_requests_total counter\\n"
        f'http_requests_total{{code="200"}} {n * 17}\\n'
        f'http_requests_total{{code="500"}} {n}\\n'
        "# TYPE queue_depth gauge\\n"
        f"queue_depth {n % 50}\\n"
        "# TYPE request_seconds histogram\\n"
        f'request_seconds_bucket{{le="0.1"}} {n * 5}\\n'
        f'request_seconds_bucket{{le="0.5"}} {n * 9}\\n'
        f'request_seconds_bucket{{le="1"}} {n * 10}\\n'
        f'request_seconds_bucket{{le="+Inf"}} {n * 10}\\n'
        f"request_seconds_sum {n * 2.5}\\n"
        f"request_seconds_count {n * 10}\\n"
    )

async def handle(request):
    return web.Response(text=body(int(request.match_info["i"])), content_type="text/plain")

app = web.Application()
app.router.add_get("/t/{i}/metrics", handle)
web.run_app(app, host="127.0.0.1", port=port, print=lambda *a: print("ready", flush=True),
            access_log=None, handle_signals=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def targets_server() -> AsyncIterator[int]:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(port),
        str(TARGETS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if b"ready" not in line:
            raise RuntimeError("the targets' server did not start")
        yield port
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def _targets(ns: str, port: int) -> list[Target]:
    return [
        Target(
            key=f"{ns}.scrape_target.t{i}",
            namespace=ns,
            job=f"t{i}",
            url=f"http://127.0.0.1:{port}/t/{i}/metrics",
            interval_s=INTERVAL_S,
            timeout_s=INTERVAL_S,
        )
        for i in range(TARGETS)
    ]


async def scrape_window(url: str, port: int, seconds: float) -> tuple[float, float, int, int]:
    """p99 start delay (ms), CPU ms per target per second, scrapes, failed scrapes."""
    ns = f"bench_{uuid.uuid4().hex[:10]}"
    stream = ns.upper()
    reports: list[ScrapeReport] = []
    async with base.connected(url) as nc:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(name=stream, subjects=[f"ops.metric.{ns}.>"], max_msg_size=4 << 20)
        )
        scraper = Scraper(js, SystemClock(), CollectorMetrics(), on_scrape=reports.append)
        try:
            scraper.sync(_targets(ns, port))
            await asyncio.sleep(INTERVAL_S * 1.5)  # warm-up: connections, first slots
            reports.clear()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            done = list(reports)
        finally:
            await scraper.stop()
            await js.delete_stream(stream)
    if not done:
        raise RuntimeError("no scrape happened")
    delays = sorted(r.delay_s * 1000 for r in done)
    failed = sum(1 for r in done if not r.up)
    return percentile(delays, 99), cpu * 1000 / (TARGETS * wall), len(done), failed


# the baseline: the same slots with no work in them, in a process of its own, during the window
IDLE = """
import asyncio, math, sys, time, zlib

count, interval = int(sys.argv[1]), float(sys.argv[2])
warmup, seconds = float(sys.argv[3]), float(sys.argv[4])
delays = []

async def slots(i):
    offset = (zlib.crc32(f"t{i}".encode()) % 1_000_003) / 1_000_003 * interval
    slot = math.ceil((time.monotonic() - offset) / interval) * interval + offset
    while True:
        await asyncio.sleep(max(0.0, slot - time.monotonic()))
        delays.append(max(0.0, time.monotonic() - slot) * 1000)
        slot += interval

async def main():
    tasks = [asyncio.ensure_future(slots(i)) for i in range(count)]
    await asyncio.sleep(warmup)
    delays.clear()
    await asyncio.sleep(seconds)
    got = sorted(delays)
    print(got[max(0, math.ceil(0.99 * len(got)) - 1)], flush=True)

asyncio.run(main())
"""


async def idle_window(seconds: float) -> float:
    """p99 lateness (ms) of 500 idle slot timers in another process, over the window."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        IDLE,
        str(TARGETS),
        str(INTERVAL_S),
        str(INTERVAL_S * 1.5),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return float(out.decode().strip())


async def run(ctx: BenchContext) -> list[Record]:
    seconds = 4.0 if ctx.quick else 10.0
    repeats = 1 if ctx.quick else min(ctx.repeats, 3)
    results: list[tuple[float, float, int, int]] = []
    idles: list[float] = []
    async with targets_server() as port:

        async def once() -> float:
            # the idle baseline runs beside the window: the machine's own lateness, same moment
            scraped, idle = await asyncio.gather(
                scrape_window(ctx.url, port, seconds), idle_window(seconds)
            )
            results.append(scraped)
            idles.append(idle)
            return scraped[0]

        delay = await median_of(repeats, once)
    cpu = sorted(r[1] for r in results)[len(results) // 2]
    scrapes = sum(r[2] for r in results)
    failed = sum(r[3] for r in results)
    baseline = sorted(idles)[len(idles) // 2]
    return [
        emit(
            BENCH,
            "scrape_start_delay_p99_ms",
            delay.median,
            "ms",
            baseline=baseline,
            ratio=round(delay.median / baseline, 3) if baseline else None,
            runs=rounded_runs(delay.runs),
            targets=TARGETS,
            interval_s=INTERVAL_S,
            scrapes=scrapes,
            failed=failed,
            sync=ctx.sync,
        ),
        emit(
            BENCH,
            "scrape_cpu_per_target_ms",
            cpu,
            "ms CPU/target/s",
            runs=rounded_runs([r[1] for r in results]),
            targets=TARGETS,
        ),
    ]
