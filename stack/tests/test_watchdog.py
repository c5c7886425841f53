"""Health that tells the truth: ``up`` restarts a nats-server or a service that stops answering,
and its stack file follows the restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hms_testing import wait_for
from hms_testing.stacks import RunningStack, alive, fill, start_stack, stop_stack, tmpfs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("watchdog"))
    yield running
    stop_stack(running)


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP: the process is there, holds its ports and answers nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_a_hung_nats_server_is_restarted_and_every_service_reconnects(
    stack: RunningStack,
) -> None:
    old = stack.info["nats_pid"]
    with stopped(old):
        wait_for(lambda: stack.info["nats_pid"] != old, 10, "up to replace the stopped server")
    assert f"nats-server (pid {old}) is unhealthy" in stack.log()
    assert not alive(old), "the hung server was killed, not left behind"
    wait_for(lambda: stack.status()[0] == 0, 30, "every service healthy on the new server")


def test_a_hung_service_is_killed_and_restarted(stack: RunningStack) -> None:
    victim = "evaluator"
    old = stack.info["services"][victim]["pid"]
    with stopped(old):
        wait_for(
            lambda: stack.info["services"][victim]["pid"] != old,
            10,
            f"up to replace the stopped {victim}",
        )
    assert f"{victim} (pid {old}) has not answered /healthz" in stack.log()
    assert not alive(old)
    wait_for(lambda: stack.status()[0] == 0, 20, f"the new {victim} to be healthy")


def test_the_stack_file_follows_a_service_restart(stack: RunningStack) -> None:
    victim = "autoscaler"
    old = stack.info["services"][victim]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: stack.info["services"][victim]["pid"] != old, 10, "a new pid in stack.json")
    new = stack.info["services"][victim]["pid"]
    assert alive(new)
    roles = {p["role"]: p["pid"] for p in stack.info["processes"]}
    assert roles[victim] == new


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk") as disk:
        yield disk


async def fill_and_publish_until_refused(stack: RunningStack, disk: Path) -> Path:
    """Fill the disk under a stream, then publish into it until JetStream gives up."""
    creds = json.loads((stack.state_dir / "credentials.json").read_text())
    nc = await nats.connect(
        stack.info["nats_url"], user="hms-admin", password=creds["hms-admin"], connect_timeout=2
    )
    try:
        js = nc.jetstream(timeout=2)
        await js.add_stream(name="DISK_TEST", subjects=["disktest.>"])
        filler = fill(disk)
        for _ in range(200):
            try:
                await js.publish("disktest.filler", b"x" * 200_000)
            except Exception:  # no space: JetStream says so, then disables itself
                return filler
    finally:
        await nc.close()
    raise AssertionError("JetStream kept accepting writes on a full disk")


def test_the_stack_recovers_by_itself_when_disk_space_returns(
    tmp_path: Path, small_disk: Path
) -> None:
    running = start_stack(tmp_path, state=small_disk / "state")
    try:
        old = running.info["nats_pid"]
        filler = asyncio.run(fill_and_publish_until_refused(running, small_disk))
        filler.unlink()
        wait_for(lambda: running.info["nats_pid"] != old, 15, "up to restart the wedged server")
        wait_for(lambda: running.status()[0] == 0, 30, "every service healthy again")
    finally:
        stop_stack(running)
