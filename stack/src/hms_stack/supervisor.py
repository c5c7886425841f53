"""Runs each service as its own process: restart with backoff on a crash or a hang, logs to
files, and nothing left behind on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .launch import ExecLauncher, Launcher, Running

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
STABLE_AFTER_S = 30.0


def restart_delay(failures_in_row: int) -> float:
    """Backoff before a restart: doubling from 0.5 s to 30 s while the crashes come quickly;
    a process that ran stably (``STABLE_AFTER_S``) before dying starts over at 0.5 s."""
    return BACKOFF_S[min(max(failures_in_row, 1), len(BACKOFF_S)) - 1]


@dataclass
class Child:
    """One supervised service process."""

    name: str
    module: str
    env: Mapping[str, str]
    log_path: Path
    http_url: str
    proc: Running | None = None
    started_mono: float = 0.0
    restarts: int = 0
    failures_in_row: int = 0
    last_exit: int | None = None
    #: when /healthz last answered (any status) since this process started; 0: not yet
    answered_mono: float = 0.0
    _watch: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class Supervisor:
    """Start, watch, restart and stop a set of child processes."""

    def __init__(
        self,
        children: list[Child],
        *,
        launcher: Launcher | None = None,
        drain_timeout_s: float = 10.0,
        hang_after_s: float | None = None,
        on_restart: Callable[[Child], None] | None = None,
    ) -> None:
        """``hang_after_s``: kill (and so restart) a child whose ``/healthz`` answered once and
        then stopped answering for that long. ``on_restart`` is told of each new process."""
        self.children = {c.name: c for c in children}
        self.launcher = launcher or ExecLauncher()
        self.drain_timeout_s = drain_timeout_s
        self.hang_after_s = hang_after_s
        self.on_restart = on_restart
        self.stopping = False
        self._hang_watch: asyncio.Task[None] | None = None

    async def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        child.proc = await self.launcher.start(child.module, child.env, child.log_path)
        child.started_mono = time.monotonic()
        child.answered_mono = 0.0
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    async def start(self) -> None:
        """Start every child, a watcher per child that restarts it when it dies, and one that
        kills a child that hangs."""
        await asyncio.gather(*(self._spawn(c) for c in self.children.values()))
        for child in self.children.values():
            child._watch = asyncio.create_task(self._keep(child))
        if self.hang_after_s is not None:
            self._hang_watch = asyncio.create_task(self._kill_hung(self.hang_after_s))

    async def _keep(self, child: Child) -> None:
        while not self.stopping:
            assert child.proc is not None
            code = await child.proc.wait()
            child.last_exit = code
            if self.stopping:
                return
            ran = time.monotonic() - child.started_mono
            child.failures_in_row = 0 if ran > STABLE_AFTER_S else child.failures_in_row + 1
            delay = restart_delay(child.failures_in_row)
            log.warning(
                "%s exited with %s after %.1fs; restarting in %.1fs (see %s)",
                child.name,
                code,
                ran,
                delay,
                child.log_path,
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await self._spawn(child)
            child.restarts += 1
            if self.on_restart is not None:
                self.on_restart(child)

    async def _kill_hung(self, hang_after_s: float) -> None:
        async with aiohttp.ClientSession() as session:
            while not self.stopping:
                await asyncio.sleep(min(1.0, hang_after_s / 3))
                live = [c for c in self.children.values() if c.proc and c.proc.returncode is None]
                await asyncio.gather(*(self.health(session, c) for c in live))
                now = time.monotonic()
                for child in live:
                    silent = now - child.answered_mono
                    if child.answered_mono and silent > hang_after_s and not self.stopping:
                        log.warning(
                            "%s (pid %s) has not answered /healthz for %.1fs; killing it to "
                            "restart it",
                            child.name,
                            child.pid,
                            silent,
                        )
                        child.answered_mono = 0.0
                        _signal_group(child, signal.SIGKILL)

    async def health(self, session: aiohttp.ClientSession, child: Child) -> bool:
        """``/healthz`` answers 200 (any answer counts as a sign of life)."""
        try:
            async with session.get(
                child.http_url + "/healthz", timeout=aiohttp.ClientTimeout(total=1.0)
            ) as resp:
                child.answered_mono = time.monotonic()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def wait_healthy(self, timeout: float) -> dict[str, bool]:
        """Poll every child's /healthz until all answer 200 or the time is up."""
        deadline = time.monotonic() + timeout
        healthy = {name: False for name in self.children}
        async with aiohttp.ClientSession() as session:
            while True:
                pending = [c for c in self.children.values() if not healthy[c.name]]
                results = await asyncio.gather(*(self.health(session, c) for c in pending))
                for child, ok in zip(pending, results, strict=True):
                    healthy[child.name] = ok
                if all(healthy.values()) or time.monotonic() > deadline:
                    return healthy
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM every process group, wait for the drain, then SIGKILL what is left."""
        self.stopping = True
        if self._hang_watch is not None:
            self._hang_watch.cancel()
        for child in self.children.values():
            if child._watch is not None:
                child._watch.cancel()
        live = [c for c in self.children.values() if c.proc and c.proc.returncode is None]
        for child in live:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.drain_timeout_s
        for child in live:
            assert child.proc is not None
            try:
                await asyncio.wait_for(child.proc.wait(), max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                log.warning("%s did not drain in time; killing it", child.name)
        for child in self.children.values():
            # the group may hold grandchildren (local workers): none may outlive us
            _signal_group(child, signal.SIGKILL)
            if child.proc is not None and child.proc.returncode is None:
                await child.proc.wait()
        self.launcher.close()


def _signal_group(child: Child, sig: signal.Signals) -> None:
    if child.proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)
    if child.proc.returncode is None:  # not yet its own group leader, right after the fork
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child.proc.pid, sig)
