"""``hms-ops up`` under test: a real subprocess, its state folder, its output; the process tree."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect
from hms_stack.natsserver import NatsServer, free_port
from hms_stack.stack import provision_stack, stack_server
from hms_stack.state import load_credentials, write_stack_file

from .waiting import wait_for


@dataclass
class RunningStack:
    """One ``hms-ops up`` process and where it keeps its state and output."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    output: Path
    #: what the last ``status`` call printed on stderr (its reasons when not ok)
    last_status_stderr: str = ""

    @property
    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / "stack.json").read_text())
        return data

    def env(self) -> dict[str, str]:
        return {**os.environ, "HMS_STATE_DIR": str(self.state_dir)}

    def status(self) -> tuple[int, list[dict[str, Any]]]:
        out = subprocess.run(
            [sys.executable, "-m", "hms_ops", "status", "--json"],
            env=self.env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        rows: list[dict[str, Any]] = json.loads(out.stdout) if out.stdout.strip() else []
        self.last_status_stderr = out.stderr.decode(errors="replace")
        return out.returncode, rows

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def up_argv(*extra: str) -> list[str]:
    """``hms-ops up`` on free ports with a fast heartbeat, plus ``extra`` options."""
    return [
        sys.executable,
        "-m",
        "hms_ops",
        "up",
        "--nats-port",
        str(free_port()),
        "--console-port",
        str(free_port()),
        "--heartbeat-interval",
        "0.3",
        *extra,
    ]


def start_stack(
    tmp: Path, *extra: str, state: Path | None = None, name: str = "up"
) -> RunningStack:
    """Run ``hms-ops up`` with its state under ``tmp`` (or ``state``) and wait until it says
    it is up; its output goes to ``tmp/<name>.out``."""
    state = state or tmp / "state"
    output = tmp / f"{name}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            up_argv(*extra),
            env={**os.environ, "HMS_STATE_DIR": str(state), "COLUMNS": "200"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = RunningStack(proc, state, output)
    wait_for(
        lambda: "hms-ops is up in" in stack.log() or proc.poll() is not None,
        40,
        "the stack to report itself up",
    )
    assert proc.poll() is None, f"hms-ops up exited early:\n{stack.log()}"
    return stack


def stop_stack(stack: RunningStack) -> None:
    """Ctrl-C, as a user would; kill it if it does not stop."""
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGINT)
        try:
            stack.proc.wait(30)
        except subprocess.TimeoutExpired:
            stack.proc.kill()


@contextlib.contextmanager
def tmpfs(path: Path, options: str = "size=64m,mode=0700") -> Iterator[Path]:
    """Mount a small tmpfs on ``path`` (to fill it, or mount it read-only); skip the test
    where mounting is not allowed (it needs root, as in CI's container)."""
    path.mkdir(parents=True, exist_ok=True)
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        pytest.skip("mounting a small disk needs root and mount(8)")
    made = subprocess.run(
        [mount, "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run([umount, "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` (a small tmpfs) to the last byte; remove the returned file to free it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * (1 << 20))
    return filler


@contextlib.contextmanager
def provisioned_state(root: Path) -> Iterator[StatePaths]:
    """A stack's NATS and state folder as after ``hms-ops up``, provisioned by its admin, with
    no services: what the CLI's client commands need to find and use it."""
    paths = StatePaths(root)
    paths.make()
    creds = load_credentials(paths)
    server: NatsServer = stack_server(paths, creds, "127.0.0.1", free_port())
    server.start()

    async def provision() -> None:
        nc = await admin_connect(server.url, creds[ADMIN_USER])
        try:
            await provision_stack(nc.jetstream())
        finally:
            await nc.close()

    try:
        asyncio.run(provision())
        write_stack_file(paths, {"nats_url": server.url})
        yield paths
    finally:
        server.stop()


def hms_ops_in(paths: StatePaths, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m hms_ops ARGS`` finding the stack through its state folder."""
    return subprocess.run(
        [sys.executable, "-m", "hms_ops", *args],
        env={**os.environ, "HMS_STATE_DIR": str(paths.root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
