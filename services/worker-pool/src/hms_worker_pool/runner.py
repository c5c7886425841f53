"""Running a run's task: a command in its own process group (timeout, capped output, minimal
environment, never a shell), a Python function with a run context, or a container image (not
yet: no container engine is configured)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from .core import Task, cap_output, minimal_env
from .fanout import ITEMS_FILE, FanOut, FanOutError

log = logging.getLogger(__name__)

#: captured output kept per run (stdout and stderr together); the rest is read and dropped
OUTPUT_CAP = 64 * 1024
#: after SIGTERM to the group, how long before SIGKILL
KILL_GRACE_S = 5.0
_CHUNK = 16 * 1024
#: in a command's scratch directory: "<process group> <worker pid> <run id>"
PGID_FILE = ".hms_pgid"


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a run's code knows of its run; a ``python`` task's function receives it.

    A run fans out with ``await ctx.enqueue(payloads)`` (``ctx.enqueue_blocking`` from a plain
    function); each item is then worked by the same function (or the one named in
    ``enqueue``) with ``ctx.item`` set to its payload and ``ctx.index`` to its position.
    """

    run_id: str
    job_id: str
    namespace: str
    attempt: int
    scratch_dir: Path
    fanout: FanOut | None = None
    item: JsonValue = None
    index: int | None = None

    @property
    def is_item(self) -> bool:
        """Whether this call works one of the run's items rather than the run itself."""
        return self.index is not None

    def _fanout(self) -> FanOut:
        if self.fanout is None:
            raise FanOutError(f"work item {self.index} of run {self.run_id!r} cannot fan out")
        return self.fanout

    async def enqueue(self, payloads: Iterable[JsonValue], *, python: str | None = None) -> int:
        """Enqueue one work item per payload; the run completes when all are done."""
        return await self._fanout().enqueue(payloads, python=python)

    def enqueue_blocking(self, payloads: Iterable[JsonValue], *, python: str | None = None) -> int:
        """:meth:`enqueue` from a plain function (it runs in a thread)."""
        return self._fanout().enqueue_blocking(payloads, python=python)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """How one attempt ended: ``ok``, else ``error`` says why (exit code, timeout, reason)."""

    ok: bool
    error: str = ""
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    timed_out: bool = False
    #: a fanned-out run: how many of its items were dead-lettered
    items_failed: int = 0
    #: stopped on request (overlap: replace), not to be retried
    cancelled: bool = False


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: how much of a failed command's output goes into RunFailed.error
ERROR_OUTPUT_TAIL = 4096


def scratch_name(name: str) -> str:
    """A directory name for a run's or an item's scratch space."""
    return _UNSAFE.sub("_", name)


def failure_text(result: TaskResult) -> str:
    """The error and the tail of the output, for RunFailed."""
    if not result.output:
        return result.error
    marker = " (output truncated)" if result.truncated else ""
    return f"{result.error}{marker}; output:\n{result.output[-ERROR_OUTPUT_TAIL:]}"


def _owned_by(pgid: int, run_id: str) -> bool:
    """Whether process group ``pgid`` still runs the command of ``run_id`` (not a reused id)."""
    try:
        environ = Path(f"/proc/{pgid}/environ").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc, or not ours to read: the group id alone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            return os.getpgid(pgid) == pgid
        return False
    return f"HMS_RUN_ID={run_id}".encode() in environ.split(b"\0")


def reap_orphans(scratch_root: Path) -> int:
    """Kill the process groups of commands whose worker was killed outright (their scratch
    directories remain, each naming its group, its worker and its run), and remove those
    directories; a live worker's commands are left alone. Returns how many were killed."""
    killed = 0
    for marker in scratch_root.glob(f"*/{PGID_FILE}"):
        try:
            pgid_text, worker_text, run_id = marker.read_text().split(" ", 2)
            pgid, worker = int(pgid_text), int(worker_text)
        except (OSError, ValueError):
            continue
        if worker != os.getpid():
            try:
                os.kill(worker, 0)
                continue  # its worker lives (another process sharing the state directory)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        if _owned_by(pgid, run_id):
            _signal_group(pgid, signal.SIGKILL)
            killed += 1
            log.warning(
                "killed the process group %d of run %s left by a killed worker", pgid, run_id
            )
        shutil.rmtree(marker.parent, ignore_errors=True)
    return killed


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    kept = bytearray()
    cut = False
    while chunk := await stream.read(_CHUNK):
        room = limit - len(kept)
        if len(chunk) > room:
            cut = True
        kept += chunk[: max(room, 0)]
    return bytes(kept), cut


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _stop_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM to the whole group, SIGKILL after ``grace_s`` if the leader still runs."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace_s)
    _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


async def run_command(
    argv: tuple[str, ...],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout_s: float | None = None,
    output_cap: int = OUTPUT_CAP,
    grace_s: float = KILL_GRACE_S,
) -> TaskResult:
    """Run ``argv`` (no shell) in a new process group; stop the group on timeout or when
    cancelled; whatever the group left running is killed once the command has ended."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return TaskResult(ok=False, error=f"command {argv[0]!r} could not start: {exc}")
    # should this worker be killed outright, the next one on the host stops the group
    (cwd / PGID_FILE).write_text(f"{proc.pid} {os.getpid()} {env.get('HMS_RUN_ID', '')}")
    assert proc.stdout is not None
    reader = asyncio.ensure_future(_read_capped(proc.stdout, output_cap))
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
        await _stop_group(proc, grace_s)
    except asyncio.CancelledError:
        await asyncio.shield(_stop_group(proc, grace_s))
        reader.cancel()
        raise
    finally:
        # a grandchild left behind would outlive the run and hold the output pipe open
        _signal_group(proc.pid, signal.SIGKILL)
    try:
        data, cut = await asyncio.wait_for(reader, grace_s)
    except TimeoutError:
        data, cut = b"", False
    text, capped = cap_output(data, output_cap)
    code = proc.returncode
    if timed_out:
        error = f"command {argv[0]!r} timed out after {timeout_s:g} s; its process group was killed"
    elif code != 0:
        error = f"command {argv[0]!r} exited with {code}"
    else:
        error = ""
    return TaskResult(
        ok=not timed_out and code == 0,
        error=error,
        exit_code=code,
        output=text,
        truncated=cut or capped,
        timed_out=timed_out,
    )


_RESOLVED: dict[str, tuple[Callable[[RunContext], Any], bool]] = {}


def resolve(target: str) -> tuple[Callable[[RunContext], Any], bool]:
    """The function ``package.module:function`` names, and whether it is async (cached: an
    item batch calls it a hundred times)."""
    found = _RESOLVED.get(target)
    if found is None:
        module_name, _, attr = target.partition(":")
        func = getattr(importlib.import_module(module_name), attr)
        if not callable(func):
            raise TypeError(f"{target!r} is not callable")
        found = _RESOLVED[target] = (func, inspect.iscoroutinefunction(func))
    return found


async def run_python(target: str, ctx: RunContext, *, timeout_s: float | None) -> TaskResult:
    """Import ``package.module:function`` and call it with ``ctx`` (awaited when async; a
    plain function runs in a thread, so the worker's loop goes on)."""
    try:
        func, is_async = resolve(target)
    except (ImportError, AttributeError, TypeError) as exc:
        return TaskResult(ok=False, error=f"python {target!r} cannot be imported: {exc}")
    try:
        if is_async:
            if timeout_s is None:
                await func(ctx)
            else:
                await asyncio.wait_for(func(ctx), timeout_s)
        else:
            await asyncio.wait_for(asyncio.to_thread(func, ctx), timeout_s)
    except TimeoutError:
        return TaskResult(
            ok=False, timed_out=True, error=f"python {target!r} timed out after {timeout_s:g} s"
        )
    except Exception as exc:
        return TaskResult(ok=False, error=f"python {target!r} raised {type(exc).__name__}: {exc}")
    return TaskResult(ok=True)


async def run_task(
    task: Task, ctx: RunContext, *, grace_s: float = KILL_GRACE_S, engine: str | None = None
) -> TaskResult:
    """Run ``task`` for the run ``ctx`` describes, in its scratch directory; an image on the
    container engine at ``engine``."""
    env = minimal_env(
        os.environ,
        home=str(ctx.scratch_dir),
        run_id=ctx.run_id,
        job_id=ctx.job_id,
        namespace=ctx.namespace,
    )
    if ctx.is_item:  # one of the run's items: its payload and position
        env.update(HMS_ITEM=json.dumps(ctx.item), HMS_ITEM_INDEX=str(ctx.index))
    if task.command is not None:
        if not ctx.is_item:  # the run: it may fan out by writing items, one JSON value a line
            env["HMS_ITEMS_FILE"] = str(ctx.scratch_dir / ITEMS_FILE)
        return await run_command(
            task.command, env=env, cwd=ctx.scratch_dir, timeout_s=task.timeout_s, grace_s=grace_s
        )
    if task.python is not None:
        return await run_python(task.python, ctx, timeout_s=task.timeout_s)
    if engine is None:
        return TaskResult(
            ok=False,
            error=f"image {task.image!r}: no container engine configured "
            "(HMS_WORKER_POOL_CONTAINER_ENGINE)",
        )
    from .containers import run_image  # aiodocker only where images run

    env.pop("HOME", None)  # the worker's scratch directory means nothing inside the container
    env.pop("PATH", None)  # the image's own
    return await run_image(
        str(task.image),
        engine=engine,
        env=env,
        timeout_s=task.timeout_s,
        grace_s=grace_s,
        labels={"hms.run_id": ctx.run_id, "hms.namespace": ctx.namespace},
    )
