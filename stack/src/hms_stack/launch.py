"""How the supervisor starts a service process.

``exec`` starts ``python -m hms_<service>``: a fresh interpreter per service, as a container
would. ``fork`` (the default of ``hms-ops up``) forks each service from a server process that
has already imported the service kit, FastStream and the contracts: on two cores, seven
interpreters importing the same 1 s of modules side by side is most of the start time, and
the fork makes ``up`` ready in about half the time. Either way each service is its own OS
process, in its own process group, with its own log file, dying with its parent.

Dying with ``up`` needs care with the fork launcher: a service's parent is the forkserver, and
every service holds the forkserver's "alive" pipe, so neither notices on its own that ``up`` was
killed. The forkserver is therefore started from ``up``'s main thread (the kernel's parent-death
signal follows the thread that forked) and, as its first preloaded module, asks for SIGKILL
when ``up`` dies (:mod:`hms_stack.forkguard`); its services get SIGKILL when it dies.

A service whose parent died gets SIGKILL, not SIGTERM: its nats-server died with the same
parent, so a drain has nothing to drain against and would only wait out its timeouts; an
unacked message is redelivered, and deterministic ids make the redelivery harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
from collections.abc import Mapping
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Literal, Protocol

LauncherName = Literal["fork", "exec"]

PRELOAD = [
    "hms_stack.forkguard",
    "hms_kit",
    "hms_contracts",
    "faststream.nats",
    "aiohttp.web",
    # the console's web stack (about a second to import on these machines)
    "fastapi",
    "uvicorn",
    "jinja2",
]


#: set by the fork launcher for the forkserver: the pid of the ``up`` it must die with
PARENT_ENV = "HMS_FORKSERVER_PARENT"


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``sig`` to this process when the thread that forked it dies."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def _die_with_up() -> None:
    die_with_parent(signal.SIGKILL)


class Running(Protocol):
    """A started service process."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class Launcher(Protocol):
    async def start(self, module: str, env: Mapping[str, str], log_path: Path) -> Running: ...

    def close(self) -> None: ...

    def helpers(self) -> dict[str, int]:
        """Helper processes of the launcher itself (role -> pid), to find them if orphaned."""
        ...


class ExecLauncher:
    """``python -m <module>`` in a new interpreter."""

    async def start(self, module: str, env: Mapping[str, str], log_path: Path) -> Running:
        with open(log_path, "ab") as out:  # noqa: ASYNC230 - a local append-only log
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # own process group: stopped as a whole, not by Ctrl-C
                preexec_fn=_die_with_up,
            )
        return proc

    def close(self) -> None:
        return None

    def helpers(self) -> dict[str, int]:
        return {}


def _child_main(module: str, env: dict[str, str], log_path: str) -> None:
    """Runs in the forked child: become a service process of our own."""
    os.setsid()
    _die_with_up()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(env)
    # as a fresh interpreter would: PYTHONPATH entries come first on the import path
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:0] = extra
    sys.argv = [module]
    entry = importlib.import_module(module + ".__main__")
    entry.main()


class _Forked:
    def __init__(self, proc: multiprocessing.process.BaseProcess) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        fd = self._proc.sentinel
        loop.add_reader(fd, done.set)
        try:
            while self._proc.exitcode is None:
                await done.wait()
                done.clear()
                await asyncio.to_thread(self._proc.join, 0.05)
        finally:
            loop.remove_reader(fd)
        code = self._proc.exitcode
        assert code is not None
        return code


class ForkLauncher:
    """Fork services from a forkserver that preloaded the shared modules."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)

    def _ensure_server(self) -> None:
        # from the calling (event loop) thread, never a worker thread: the forkserver's
        # parent-death signal fires when the thread that forked it ends
        os.environ[PARENT_ENV] = str(os.getpid())
        forkserver.ensure_running()

    async def start(self, module: str, env: Mapping[str, str], log_path: Path) -> Running:
        self._ensure_server()
        proc = self._ctx.Process(
            target=_child_main, args=(module, dict(env), str(log_path)), name=module, daemon=False
        )
        await asyncio.to_thread(proc.start)
        return _Forked(proc)

    def close(self) -> None:
        return None

    def helpers(self) -> dict[str, int]:
        found = {
            "forkserver": getattr(forkserver._forkserver, "_forkserver_pid", None),
            "resource-tracker": getattr(resource_tracker._resource_tracker, "_pid", None),
        }
        return {name: pid for name, pid in found.items() if pid}


def launcher(name: LauncherName) -> Launcher:
    return ForkLauncher() if name == "fork" else ExecLauncher()
