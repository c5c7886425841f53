"""The local backend's bookkeeping with real processes: a worker's environment leaves the
autoscaler's secrets out; the state file adopts the workers still running and never a pid the
kernel gave to another program; a drained worker gets SIGTERM, then SIGKILL if it lingers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hms_autoscaler.local import STATE_FILE, LocalWorkers, start_time
from hms_autoscaler.ports import BackendError
from hms_contracts.config import ScalePolicy
from hms_testing import wait_until

POLICY = ScalePolicy.model_validate(
    {"namespace": "ssa", "name": "pool", "max": 3, "worker_concurrency": 2}
)
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def record(state: Path, *entries: dict[str, object]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / STATE_FILE).write_text(json.dumps({"workers": list(entries)}))


def entry(pid: int, start: int | None, *, stopping: bool = False) -> dict[str, object]:
    return {
        "pool": POLICY.pool_id,
        "instance_id": f"w{pid}",
        "pid": pid,
        "start": start,
        "stopping": stopping,
    }


def test_a_workers_environment_has_the_pools_settings_and_not_the_autoscalers_secrets(
    tmp_path: Path,
) -> None:
    base = {"PATH": "/usr/bin", "HMS_AUTOSCALER_NATS_PASSWORD": "secret"}
    base |= {"HMS_WORKER_POOL_NATS_USER": "hms-worker-pool"}
    backend = LocalWorkers(tmp_path, nats_url="nats://127.0.0.1:1", base_env=base)
    env = backend.worker_env(POLICY, "pool-1")
    assert not any(k.startswith("HMS_AUTOSCALER_") for k in env)
    assert env["HMS_WORKER_POOL_NATS_USER"] == "hms-worker-pool"
    assert env["HMS_WORKER_POOL_NATS_URL"] == "nats://127.0.0.1:1"
    assert env["HMS_WORKER_POOL_INSTANCE_ID"] == "pool-1"
    assert env["HMS_WORKER_POOL_CONCURRENCY"] == "2"
    assert env["HMS_WORKER_POOL_STATE_DIR"] == str(tmp_path / "pools" / "ssa.pool")


async def test_running_workers_are_adopted_and_a_reused_pid_is_not(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    processes.append(alive)
    start = start_time(alive.pid)
    # our own pid with another start time: what a pid reused by the kernel looks like
    record(tmp_path, entry(alive.pid, start), entry(os.getpid(), 1), entry(999_999_9, 5))
    backend = LocalWorkers(tmp_path, launch="exec")
    await backend.adopt()
    assert await backend.workers(POLICY) == 1
    saved = json.loads((tmp_path / STATE_FILE).read_text())["workers"]
    assert [w["pid"] for w in saved] == [alive.pid]


async def test_a_drained_worker_gets_sigterm_then_sigkill_when_it_lingers(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    polite_script = (
        "import pathlib, signal, sys, time\n"
        f"def bye(*_):\n    pathlib.Path({str(tmp_path / 'termed')!r}).touch(); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"pathlib.Path({str(tmp_path / 'polite')!r}).touch()\n"
        "time.sleep(60)\n"
    )
    stubborn_script = (
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(tmp_path / 'stubborn')!r}).touch()\n"
        "time.sleep(60)\n"
    )
    polite = subprocess.Popen([sys.executable, "-c", polite_script])
    stubborn = subprocess.Popen([sys.executable, "-c", stubborn_script])
    processes += [polite, stubborn]
    for name in ("polite", "stubborn"):
        await wait_until((tmp_path / name).exists, timeout=10, message=f"{name} ready")
    record(
        tmp_path,
        entry(polite.pid, start_time(polite.pid)),
        entry(stubborn.pid, start_time(stubborn.pid)),
    )
    backend = LocalWorkers(tmp_path, launch="exec", drain_s=1.0)
    await backend.adopt()
    assert await backend.workers(POLICY) == 2
    began = time.monotonic()
    await backend.scale(POLICY, 0)
    assert await backend.workers(POLICY) == 0  # draining: no longer counted
    await wait_until((tmp_path / "termed").exists, timeout=10, message="SIGTERM handled")
    await wait_until(
        lambda: start_time(stubborn.pid) is None, timeout=10, message="the stubborn one gone"
    )
    assert time.monotonic() - began >= 1.0  # killed only once the drain time was up
    await backend.close()
    assert json.loads((tmp_path / STATE_FILE).read_text())["workers"] == []


async def test_the_machines_cap_holds_a_pool_that_asks_for_more(tmp_path: Path) -> None:
    backend = LocalWorkers(tmp_path, launch="exec", max_workers=0)
    with pytest.raises(BackendError, match="room for 0 under local_max_workers 0"):
        await backend.scale(POLICY, 2)
    assert await backend.workers(POLICY) == 0
