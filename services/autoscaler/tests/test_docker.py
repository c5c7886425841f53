"""The docker backend for real, through podman's Docker-compatible API service (Debian's podman
and runc): labelled worker containers are created with explicit ulimits and the worker's
settings, counted again by a new backend (adoption by label), drained by SIGTERM and removed.

The image is a small one built here (no registry can be pulled): Debian's static busybox,
imported, whose command exits cleanly on SIGTERM. Skipped, saying why, where podman, runc or
busybox-static is missing or cannot run containers.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiodocker import Docker
from hms_autoscaler.docker import POOL_LABEL, DockerWorkers
from hms_contracts.config import ScalePolicy
from hms_testing import wait_until

pytestmark = [pytest.mark.slow]

BUSYBOX = Path("/bin/busybox")
#: podman without systemd (this sandbox, CI): runc, cgroupfs, events in a file
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
WORKER = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]


def why_not() -> str | None:
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs podman runc busybox-static)"
    if not BUSYBOX.exists():
        return "busybox-static is not installed (it makes the test's worker image)"
    out = subprocess.run([*PODMAN, "info"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return f"podman cannot run here: {out.stderr.strip()[-300:]}"
    return None


REASON = why_not()


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    if REASON:
        pytest.skip(REASON)
    root = tmp_path / "rootfs.tar"
    with tarfile.open(root, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    tag = f"localhost/hms-autoscaler-test-worker:{secrets.token_hex(4)}"
    cmd = "CMD [" + ", ".join(f'"{part}"' for part in WORKER) + "]"
    made = podman("import", "--change", cmd, str(root), tag)
    assert made.returncode == 0, made.stderr
    try:
        yield tag
    finally:
        podman("rmi", "-f", tag)


@pytest.fixture
async def engine(tmp_path: Path, image: str) -> AsyncIterator[str]:
    """podman's Docker-compatible API on a socket of this test's own."""
    sock = tmp_path / "podman.sock"
    service = subprocess.Popen(
        [*PODMAN, "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline, "podman's API service did not start"
            await asyncio.sleep(0.1)
        yield url
    finally:
        docker = Docker(url=url)
        try:
            for c in await docker.containers.list(all=True, filters={"label": [POOL_LABEL]}):
                if c._container.get("Image") == image or image in str(c._container):
                    await c.delete(force=True)
        finally:
            await docker.close()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)


def policy(image: str) -> ScalePolicy:
    return ScalePolicy.model_validate(
        {
            "namespace": "gw",
            "name": f"gateway_{secrets.token_hex(3)}",
            "max": 4,
            "backend": "docker",
            "docker": {"image": image, "network": "host"},
            "worker_concurrency": 3,
        }
    )


async def inspect(url: str, pool: ScalePolicy) -> list[dict[str, Any]]:
    docker = Docker(url=url)
    try:
        found = await docker.containers.list(
            all=True, filters={"label": [f"{POOL_LABEL}={pool.pool_id}"]}
        )
        return [await c.show() for c in found]
    finally:
        await docker.close()


async def test_worker_containers_are_created_adopted_by_label_and_drained(
    engine: str, image: str
) -> None:
    pool = policy(image)
    env = {"HMS_WORKER_POOL_NATS_URL": "nats://127.0.0.1:4222"}
    backend = DockerWorkers(engine, env=env, stop_timeout_s=10)
    try:
        assert await backend.workers(pool) == 0
        await backend.scale(pool, 2)
        assert await backend.workers(pool) == 2
        shown = await inspect(engine, pool)
        assert len(shown) == 2
        for c in shown:
            assert c["State"]["Running"]
            assert c["Config"]["Labels"][POOL_LABEL] == pool.pool_id
            assert "HMS_WORKER_POOL_CONCURRENCY=3" in c["Config"]["Env"]
            assert "HMS_WORKER_POOL_NATS_URL=nats://127.0.0.1:4222" in c["Config"]["Env"]
            limits = {u["Name"]: u["Soft"] for u in c["HostConfig"]["Ulimits"] or []}
            assert limits.get("RLIMIT_NOFILE", limits.get("nofile")) == 4096
    finally:
        await backend.close()
    # a restarted autoscaler: a new backend counts the pool's containers by their label
    again = DockerWorkers(engine, env=env, stop_timeout_s=10)
    try:
        assert await again.workers(pool) == 2
        began = time.monotonic()
        await again.scale(pool, 0)
        assert await again.workers(pool) == 0  # draining ones no longer count
        await wait_until(
            lambda: _none_left(engine, pool), timeout=60, message="both drained and removed"
        )
        # drained by SIGTERM (the worker exits at once), not killed after the 10 s timeout
        assert time.monotonic() - began < 8
    finally:
        await again.close()


async def _none_left(url: str, pool: ScalePolicy) -> bool:
    return not await inspect(url, pool)
