"""Processes a stack recorded in its stack file, found again after the stack died.

Each is recorded with its start time (``/proc/<pid>/stat``, in clock ticks since boot): a pid
the kernel has since given to another program has another start time, and is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])  # field 22 of stat(5), counting from after the command name


def record(role: str, pid: int | None) -> dict[str, Any] | None:
    """How the stack file remembers one process."""
    if pid is None:
        return None
    return {"role": role, "pid": pid, "start": start_time(pid)}


def still_running(entry: dict[str, Any]) -> bool:
    """The recorded process itself is alive: same pid, same start time."""
    try:
        pid, start = int(entry["pid"]), entry["start"]
    except (KeyError, TypeError, ValueError):
        return False
    return start is not None and pid != os.getpid() and start_time(pid) == start


def reap(processes: list[dict[str, Any]], timeout: float = 5.0) -> list[dict[str, Any]]:
    """SIGKILL each recorded process that still runs (with its process group when it leads
    one); wait until they are gone; return those that were reaped."""
    found = [p for p in processes if isinstance(p, dict) and still_running(p)]
    for entry in found:
        pid = int(entry["pid"])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(still_running(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found
