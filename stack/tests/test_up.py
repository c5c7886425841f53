"""``hms-ops up`` and ``hms-ops status`` as a user runs them: real processes, real NATS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from hms_contracts.topology import SERVICE_NAMES
from hms_stack.natsserver import free_port
from hms_testing import wait_for
from hms_testing.stacks import (
    RunningStack,
    alive,
    descendants,
    start_stack,
    stop_stack,
)

pytestmark = pytest.mark.slow

READY_LIMIT_S = 5.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    stop_stack(running)


def test_up_brings_every_service_healthy_within_five_seconds(stack: RunningStack) -> None:
    info = stack.info
    assert set(info["services"]) == set(SERVICE_NAMES)
    assert info["ready_s"] <= READY_LIMIT_S, f"ready in {info['ready_s']:.2f}s"
    text = stack.log()
    assert "hms-ops is up in" in text
    assert info["dashboard_url"] in text, "the dashboard URL is printed"
    for svc in info["services"].values():
        assert Path(svc["log"]).exists(), "every service logs to its own file"
    config = json.loads((stack.state_dir / "nats" / "nats-server.conf").read_text())
    assert config["jetstream"]["sync_interval"] == "always", "an acked message is on disk"
    assert config["host"] == "127.0.0.1"
    users = {u["user"]: u for u in config["authorization"]["users"]}
    assert set(users) == {"hms-admin", *(f"hms-{name}" for name in SERVICE_NAMES)}
    assert all("permissions" in users[f"hms-{name}"] for name in SERVICE_NAMES)


def test_no_service_is_refused_anything_by_nats_once_running(stack: RunningStack) -> None:
    """Each service's least-privilege user lets it do all of its own work: a refused operation
    shows in its log within a second of starting (its feeds and consumers open at once)."""
    time.sleep(3.0)
    refused = {
        name: [line for line in Path(svc["log"]).read_text().splitlines() if "violation" in line]
        for name, svc in stack.info["services"].items()
    }
    assert not {name: lines[:2] for name, lines in refused.items() if lines}


def test_status_reports_every_service_with_version_instance_health_and_uptime(
    stack: RunningStack,
) -> None:
    code, rows = stack.status()
    assert code == 0, rows
    assert {r["service"] for r in rows} == set(SERVICE_NAMES)
    for row in rows:
        assert row["state"] == "ok"
        # the version each service runs is its own package's, as the registry reports it
        assert row["version"] == version("hms-" + row["service"])
        assert row["instance"]
        assert row["uptime_s"] >= 0
    leaders = {r["service"]: r["leader"] for r in rows}
    assert leaders["scheduler"] is True
    assert leaders["worker-pool"] is None


def test_supervisor_restarts_a_service_killed_with_sigkill(stack: RunningStack) -> None:
    victim = "evaluator"
    _, before = stack.status()
    old = next(r for r in before if r["service"] == victim)
    os.kill(old["pid"], signal.SIGKILL)

    def replaced() -> bool:
        _, rows = stack.status()
        mine = [r for r in rows if r["service"] == victim and r["state"] == "ok"]
        return any(r["pid"] != old["pid"] for r in mine)

    wait_for(replaced, 20, f"a new {victim} instance")
    assert f"{victim} exited with -9" in stack.log()


def test_status_exits_non_zero_when_a_service_stops_beating(stack: RunningStack) -> None:
    _, rows = stack.status()
    console = next(r for r in rows if r["service"] == "console")
    os.kill(console["pid"], signal.SIGSTOP)
    try:

        def flagged() -> bool:
            code, rows = stack.status()
            states = {r["service"]: r["state"] for r in rows}
            return code == 1 and states["console"] == "stale"

        wait_for(flagged, 10, "status to flag the silent console")
    finally:
        with contextlib.suppress(ProcessLookupError):  # up may have replaced it meanwhile
            os.kill(console["pid"], signal.SIGCONT)
    wait_for(lambda: stack.status()[0] == 0, 10, "the console to recover")


def test_stack_restarts_a_killed_nats_server_and_every_service_reconnects(
    stack: RunningStack,
) -> None:
    old = stack.info["nats_pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: "nats-server died" in stack.log(), 10, "the stack to notice")
    logs = [Path(svc["log"]) for svc in stack.info["services"].values()]

    def reconnected() -> bool:
        # the restarted server still holds the beats written just before the kill: status
        # says ok on them only until they age, so first wait for every service to be back
        return all(log.read_text().count("reconnected to NATS") >= 1 for log in logs)

    wait_for(reconnected, 30, "every service to reconnect")
    wait_for(lambda: stack.status()[0] == 0, 30, "every service healthy on the restarted server")
    _, rows = stack.status()
    ok = {r["service"] for r in rows if r["state"] == "ok"}
    assert ok == set(SERVICE_NAMES), stack.last_status_stderr


def test_a_second_up_on_the_same_state_dir_is_refused(stack: RunningStack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hms_ops", "up", "--nats-port", str(free_port())],
        env=stack.env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert b"a stack is already running" in out.stderr
    assert stack.info["pid"] == stack.proc.pid, "the running stack's file is left alone"
    assert stack.status()[0] == 0


def test_status_without_a_stack_says_so(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hms_ops", "status"],
        env={**os.environ, "HMS_STATE_DIR": str(tmp_path)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert b"no stack is running" in out.stderr


def test_up_refuses_a_taken_nats_port_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "hms_ops", "up", "--nats-port", str(port)],
            env={**os.environ, "HMS_STATE_DIR": str(tmp_path)},
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 2
    assert f"port {port} on 127.0.0.1 for NATS (--nats-port) is already in use".encode() in (
        out.stderr
    )
    assert b"Traceback" not in out.stderr


@pytest.mark.parametrize("launcher", ["fork", "exec"])
def test_ctrl_c_stops_everything_and_leaves_no_process(tmp_path: Path, launcher: str) -> None:
    running = start_stack(tmp_path, "--launcher", launcher)
    pids = descendants(running.proc.pid)
    info = running.info
    service_pids = {s["pid"] for s in info["services"].values()}
    assert service_pids <= pids
    assert info["nats_pid"] in pids
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(30) == 0, running.log()
    wait_for(lambda: not any(alive(p) for p in pids), 5, "every child to be gone")
    assert "no process left behind" in running.log()
    assert not (running.state_dir / "stack.json").exists()


def test_up_rejects_an_invalid_port_before_starting_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = subprocess.run(
        [sys.executable, "-m", "hms_ops", "up", "--nats-port", "70000"],
        env={**os.environ, "HMS_STATE_DIR": str(state), "COLUMNS": "200"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert b"--nats-port" in out.stderr
    assert b"less than or equal to 65535" in out.stderr
    assert not state.exists(), "nothing was created"
