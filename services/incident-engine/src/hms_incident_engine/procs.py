"""Running a step's program: an argv list (never a shell) in its own process group, with a
minimal environment, a timeout (SIGTERM, then SIGKILL to the whole group) and capped output;
and, after a crash, killing the groups of steps that were running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MARKER_ENV = "HMS_STEP_MARKER"
"""Set in every step's environment, so a restart kills only processes that are its own."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None
    output: str
    truncated: bool
    timed_out: bool
    duration_s: float
    error: str | None = None


OnOutput = Callable[[bytes], Awaitable[None]]


async def _collect(
    stream: asyncio.StreamReader, cap: int, into: bytearray, on_output: OnOutput | None
) -> bool:
    """Read to EOF, keeping the first ``cap`` bytes (each kept chunk handed to ``on_output``
    as it comes); whether anything was cut."""
    cut = False
    while chunk := await stream.read(65536):
        room = cap - len(into)
        if room > 0:
            kept = chunk[:room]
            into += kept
            if on_output is not None:
                await on_output(kept)
        cut |= len(chunk) > room
    return cut


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def run_argv(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    cap: int,
    grace_s: float = 2.0,
    cwd: Path | None = None,
    on_spawn: Callable[[int], Awaitable[None]] | None = None,
    on_output: OnOutput | None = None,
) -> Outcome:
    """Run ``argv``; ``on_spawn(pgid)`` is awaited as soon as the group exists (the caller
    records it, so a restart can kill the group), ``on_output`` with each piece of the kept
    output as it comes."""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(None, "", False, False, time.monotonic() - started, f"cannot start: {exc}")
    pgid = proc.pid  # a new session's leader leads its own group
    buffer = bytearray()
    assert proc.stdout is not None
    reader = asyncio.ensure_future(_collect(proc.stdout, cap, buffer, on_output))
    timed_out = False
    try:
        if on_spawn is not None:
            await on_spawn(pgid)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            _killpg(pgid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                _killpg(pgid, signal.SIGKILL)
                await proc.wait()
    finally:
        # whatever the step left behind in its group goes with it (and on cancellation, all)
        _killpg(pgid, signal.SIGKILL)
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await proc.wait()
    try:
        truncated = await asyncio.wait_for(reader, 5.0)
    except TimeoutError:
        reader.cancel()
        truncated = True
    return Outcome(
        exit_code=None if timed_out else proc.returncode,
        output=buffer.decode("utf-8", errors="replace"),
        truncated=truncated,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
    )


def _group_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields follow the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[2]) if len(fields) > 2 else None


def kill_orphans(pgid: int, marker: str) -> int:
    """SIGKILL every process of group ``pgid`` whose environment carries ``marker`` (so a
    recycled group id is never hit); the number killed."""
    token = f"{MARKER_ENV}={marker}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if _group_of(pid) != pgid:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if token in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    if killed:
        log.warning("killed %d orphaned process(es) of step group %d", killed, pgid)
    return killed
