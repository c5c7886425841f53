"""A service process drains on SIGTERM and leaves the registry; kill -9 leaves it to the TTL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from hms_contracts import ServiceHeartbeat, specs
from hms_kit import ensure_stream
from hms_kit.registry import registry_key
from hms_ops.registry import is_stale
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

BEAT_S = 0.3


async def registry_entry(js: JetStreamContext, proc: ServiceProcess) -> ServiceHeartbeat | None:
    kv = await js.key_value(specs.SERVICE_REGISTRY.bucket)
    try:
        entry = await kv.get(registry_key(proc.service, proc.instance_id))
    except KeyNotFoundError:
        return None
    return ServiceHeartbeat.model_validate_json(entry.value or b"")


@pytest.mark.slow
async def test_sigterm_drains_exits_zero_and_removes_the_registry_entry(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    proc = await start_service("hms_metrics_collector", heartbeat_interval_s=BEAT_S)
    beat = await wait_until(lambda: registry_entry(js, proc), timeout=5, message="a heartbeat")
    assert beat.pid == proc.pid
    assert beat.http_url == proc.http_url

    assert await proc.terminate(timeout=5) == 0
    assert await registry_entry(js, proc) is None
    assert '"msg": "stopped"' in proc.log_text()


@pytest.mark.slow
async def test_kill_9_leaves_the_registry_entry_to_go_stale_and_lapse(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    proc = await start_service("hms_metrics_collector", heartbeat_interval_s=BEAT_S)
    await wait_until(lambda: registry_entry(js, proc), timeout=5, message="a heartbeat")

    proc.kill()

    last = await registry_entry(js, proc)
    assert last is not None, "no drain ran, so nobody removed the entry"
    assert not is_stale(last)
    await wait_until(lambda: is_stale(last), timeout=5, message="the beat to go stale")
    assert await registry_entry(js, proc) == last, "it stays until its TTL"


@pytest.mark.slow
async def test_a_consumer_waits_not_ready_until_the_owner_provisions_its_stream(
    start_service: ServiceLauncher, js: JetStreamContext
) -> None:
    # the worker pool's consumer sits on JOB_RUNS, which the scheduler owns
    worker = asyncio.create_task(start_service("hms_worker_pool", service="worker-pool"))
    await asyncio.sleep(2.0)
    assert not worker.done(), "the worker pool must not be ready without its work queue"
    await ensure_stream(js, specs.JOB_RUNS)
    proc = await worker
    info = await js.consumer_info("JOB_RUNS", "worker_pool")
    assert info.config.durable_name == "worker_pool"
    assert "waiting for stream JOB_RUNS (provisioned by scheduler)" in proc.log_text()


def test_a_bad_setting_stops_the_service_with_the_variable_named() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hms_scheduler"],
        env={
            **os.environ,
            "HMS_SCHEDULER_HTTP_PORT": "not-a-port",
            "HMS_SCHEDULER_HEARTBEAT_INTERVAL_S": "-1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "HMS_SCHEDULER_HTTP_PORT: Input should be a valid integer" in out.stderr
    assert "HMS_SCHEDULER_HEARTBEAT_INTERVAL_S: Input should be greater than 0" in out.stderr
    assert "Traceback" not in out.stderr
