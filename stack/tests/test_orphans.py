"""No orphans, no confusion between stacks: whatever ``hms-ops up`` started dies with it, a later
``up`` cleans up after one that could not, and two stacks never mistake each other's ports or
servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hms_stack.leftovers import start_time
from hms_stack.natsserver import free_port
from hms_testing import wait_for
from hms_testing.stacks import alive, descendants, start_stack, stop_stack


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["fork", "exec"])
def test_kill_9_of_up_leaves_no_process_and_frees_the_ports(tmp_path: Path, launcher: str) -> None:
    running = start_stack(tmp_path, "--launcher", launcher)
    info = running.info
    pids = descendants(running.proc.pid)
    assert {s["pid"] for s in info["services"].values()} | {info["nats_pid"]} <= pids
    running.proc.kill()
    running.proc.wait()
    wait_for(lambda: not any(alive(p) for p in pids), 5, "every child of the killed up to die")
    port = int(info["nats_url"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # the NATS port is free again
    again = start_stack(tmp_path, state=running.state_dir, name="again")
    try:
        assert again.info["nats_server_name"] != info.get("nats_server_name", "hms-ops")
        time.sleep(1.5)
        assert "nats-server died" not in again.log(), "the new stack runs its own server"
        # the killed singletons' leases lapse on their TTL: until then status says who waits
        wait_for(lambda: again.status()[0] == 0, 20, "status ok once the old leases lapsed")
    finally:
        stop_stack(again)


@pytest.mark.slow
def test_a_later_up_stops_what_a_dead_stack_left_running_but_spares_a_recycled_pid(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    left = subprocess.Popen(["sleep", "120"], start_new_session=True)
    recycled = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        (state / "stack.json").write_text(
            json.dumps(
                {
                    "pid": 999999,
                    "nats_url": "nats://127.0.0.1:1",
                    "processes": [
                        {"role": "nats-server", "pid": left.pid, "start": start_time(left.pid)},
                        # same pid, another start time: the kernel gave the pid to someone else
                        {"role": "evaluator", "pid": recycled.pid, "start": 1},
                    ],
                }
            )
        )
        running = start_stack(tmp_path)
        try:
            assert left.wait(5) == -signal.SIGKILL
            assert recycled.poll() is None, "a pid that is not the recorded process is spared"
            assert (
                f"left running by a stack that died (pid 999999): nats-server (pid {left.pid})"
                in (running.log())
            )
        finally:
            stop_stack(running)
    finally:
        for proc in (left, recycled):
            proc.kill()
            proc.wait()


def _up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hms_ops", "up", *args],
        env={**os.environ, "HMS_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"},
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("role", ["--nats-port", "--console-port"])
def test_up_refuses_a_port_something_else_listens_on(tmp_path: Path, role: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--console-port" if role == "--nats-port" else "--nats-port"
        out = _up(tmp_path, role, str(port), other, str(free_port()))
    assert out.returncode == 2, out.stderr
    assert f"port {port} on 127.0.0.1 for".encode() in out.stderr
    assert f"({role}) is already in use".encode() in out.stderr
    assert b"Traceback" not in out.stderr


def test_up_refuses_one_port_for_two_roles_before_starting_anything(tmp_path: Path) -> None:
    port = str(free_port())
    out = _up(tmp_path, "--nats-port", port, "--console-port", port)
    assert out.returncode == 2
    assert (
        f"NATS (--nats-port) and the console (--console-port) are both {port}".encode()
        in out.stderr
    )
    assert not (tmp_path / "state").exists(), "nothing was created"
