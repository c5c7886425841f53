"""The config registry: applying 1,000 objects and a service following them.

- ``apply_1000_s``: one multi-document YAML file of 1,000 alert rules through the CLI's path
  (read and validate every document, then ``ConfigStore.apply``: pipelined compare-and-swap
  writes, each audited as ``ConfigChanged``). Target: at most 2 s. Baseline: the seconds raw
  ``publish_async`` takes for 1,000 messages.
- ``watch_1000_s``: a service's :class:`hms_kit.ConfigWatcher` starting on those 1,000
  objects until it holds every one (the snapshot). Target: at most 1 s.
- ``applied_and_watched_1000_s``: end to end, a watcher already running while the 1,000 are
  applied: from the start of the apply until it holds every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path

from hms_contracts import specs
from hms_contracts.config import Alert
from hms_kit import ConfigWatcher, ensure_bucket, ensure_stream
from hms_ops.configfiles import dump_documents, load_objects
from hms_ops.configstore import ConfigStore, publish_changes
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from . import bench_nats_baseline as base
from ._common import BenchContext, Record, emit, median_of, rounded_runs

log = logging.getLogger(__name__)

BENCH = "config"


def rules(count: int) -> list[Alert]:
    return [
        Alert.model_validate(
            {
                "namespace": "bench",
                "name": f"rule_{i:05d}",
                "metric": "api.latency_p99",
                "condition": f"> {1000 + i}",
                "window": "5m",
                "playbook": "rollback",
            }
        )
        for i in range(count)
    ]


async def _fresh(nc: Client) -> ConfigStore:
    """An empty registry and audit stream (no repetition sees another's objects)."""
    js = nc.jetstream()
    for stream in (specs.kv_stream(specs.CONFIG), specs.CONFIG_CHANGES.name):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    await ensure_bucket(js, specs.CONFIG)
    await ensure_stream(js, specs.CONFIG_CHANGES)
    kv = await js.key_value(specs.CONFIG.bucket)
    return ConfigStore(kv, author="bench", on_change=publish_changes(js))


async def _wait_for(watcher: ConfigWatcher, count: int) -> None:
    while len(watcher.current) < count:
        await watcher.changed(timeout=30)


async def once(url: str, path: Path, count: int) -> tuple[float, float, float]:
    async with base.connected(url) as nc:
        store = await _fresh(nc)
        running = ConfigWatcher(nc, ["alert"])
        await running.start()
        start = time.perf_counter()
        changes = await store.apply([o.object for o in load_objects([path])])
        applied = time.perf_counter()
        await asyncio.wait_for(_wait_for(running, count), 30)
        watched = time.perf_counter() - start
        await running.stop()
        if sum(c.action == "created" for c in changes) != count:
            raise RuntimeError("apply did not create every object")
        fresh = ConfigWatcher(nc, ["alert"])
        begin = time.perf_counter()
        await fresh.start()
        snapshot = time.perf_counter() - begin
        await fresh.stop()
        if len(fresh.current) != count:
            raise RuntimeError(f"the watcher holds {len(fresh.current)} of {count} objects")
        return applied - start, snapshot, watched


async def run(ctx: BenchContext) -> list[Record]:
    count = 1000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(dump_documents(rules(count)))
        results: list[tuple[float, float, float]] = []

        async def one() -> float:
            results.append(await once(ctx.url, path, count))
            return results[-1][0]

        log.info("config: %d x apply and watch %d objects", ctx.repeats, count)
        await median_of(ctx.repeats, one)
    raw = ctx.baselines.get(base.JS_PUBLISH_ASYNC)
    baseline = count / raw if raw else None
    out = []
    for i, (metric, target) in enumerate(
        (("apply_1000_s", 2.0), ("watch_1000_s", 1.0), ("applied_and_watched_1000_s", 3.0))
    ):
        runs = sorted(r[i] for r in results)
        value = runs[len(runs) // 2]
        # the snapshot publishes nothing: it has no raw-publish twin
        vs = None if metric == "watch_1000_s" else baseline
        ratio = round(value / vs, 3) if vs else None
        out.append(
            emit(
                BENCH,
                metric,
                value,
                "s",
                baseline=vs,
                ratio=ratio,
                target=target,
                n=count,
                runs=rounded_runs(runs),
                sync=ctx.sync,
            )
        )
    return out
