"""Image tasks through the Docker Engine API against podman's compatible service, with a small
image built here from a static busybox (no image can be pulled); skipped, saying why, where
podman cannot build or serve."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import specs
from hms_contracts.config import Job
from hms_contracts.runs import RunScheduled
from hms_kit import ensure_stream, publish
from hms_testing import ServiceLauncher, ServiceProcess, wait_until
from hms_testing.runs import run_events
from hms_worker_pool.store import OUTCOMES_FILE, read_outcomes
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow

OK_IMAGE = "localhost/hms-test-worker:ok"
FAILING_IMAGE = "localhost/hms-test-worker:fails"


def build(context: Path, tag: str, entrypoint: str) -> None:
    command = json.dumps(["/bin/busybox", "sh", "-c", entrypoint])
    (context / "Containerfile").write_text(
        f"FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT {command}\n"
    )
    out = subprocess.run(
        ["podman", "build", "-q", "-t", tag, str(context)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        pytest.skip(f"podman cannot build an image here: {out.stderr.strip()[-300:]}")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[str]:
    """podman's Docker-compatible API on a socket of its own, with the two test images."""
    podman, busybox = shutil.which("podman"), shutil.which("busybox")
    if podman is None or busybox is None:
        pytest.skip("podman and a static busybox are needed to build and run a test image")
    context = tmp_path / "image"
    context.mkdir()
    shutil.copy(busybox, context / "busybox")
    build(context, OK_IMAGE, "echo run $HMS_RUN_ID in $HMS_NAMESPACE")
    build(context, FAILING_IMAGE, "echo failing; exit 3")
    probe = subprocess.run(
        [podman, "run", "--rm", OK_IMAGE], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:  # e.g. inside a container that may not set rlimits
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    socket = tmp_path / "podman.sock"
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if socket.exists():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.skip("podman system service did not open its socket")
        yield f"unix://{socket}"
    finally:
        service.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.wait(10)
        subprocess.run([podman, "rmi", "-f", OK_IMAGE, FAILING_IMAGE], capture_output=True,
                       timeout=60, check=False)  # fmt: skip


async def start_worker(
    start_service: ServiceLauncher, js: JetStreamContext, engine: str
) -> ServiceProcess:
    await ensure_stream(js, specs.JOB_RUNS)
    env = {"ACK_WAIT_S": "10", "KILL_GRACE_S": "1", "CONTAINER_ENGINE": engine}
    return await start_service(
        "hms_worker_pool", env={f"HMS_WORKER_POOL_{k}": v for k, v in env.items()}
    )


async def schedule(js: JetStreamContext, ns: str, **job: Any) -> RunScheduled:
    spec = Job.model_validate(
        {"namespace": ns, "name": "rescore", "schedule": "0 0 * * *", "queue": "q", **job}
    )
    run = spec.run_at(datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC))
    await publish(js, run)
    return run


async def test_an_image_runs_on_the_engine_with_the_runs_environment(
    start_service: ServiceLauncher, js: JetStreamContext, engine: str
) -> None:
    worker = await start_worker(start_service, js, engine)
    ns = f"ns_{secrets.token_hex(3)}"
    run = await schedule(js, ns, image=OK_IMAGE)
    await wait_until(lambda: read_outcomes(worker.state_dir / OUTCOMES_FILE), timeout=60,
                     message="the run's outcome")  # fmt: skip
    events = await run_events(js, ns)
    assert read_outcomes(worker.state_dir / OUTCOMES_FILE) == [(ns, run.run_id, "completed", 1)], (
        events
    )


async def test_an_image_that_exits_non_zero_fails_with_its_code_and_output(
    start_service: ServiceLauncher, js: JetStreamContext, engine: str
) -> None:
    worker = await start_worker(start_service, js, engine)
    ns = f"ns_{secrets.token_hex(3)}"
    await schedule(js, ns, image=FAILING_IMAGE)
    await wait_until(lambda: read_outcomes(worker.state_dir / OUTCOMES_FILE), timeout=60,
                     message="the run's outcome")  # fmt: skip
    [failed] = [e for e in await run_events(js, ns) if e["subject"].endswith(".failed")]
    assert f"image '{FAILING_IMAGE}' exited with 3" in failed["error"]
    assert "failing" in failed["error"]
