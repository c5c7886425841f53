"""The local backend: a pool's workers are worker-pool processes on this machine.

Started fast: forked from a server process that has already imported the worker and its
libraries (as ``hms-ops up`` starts services), or ``python -m`` with ``launch = "exec"``.
Stopped by draining: SIGTERM (the worker hands back the run in hand), a wait, then SIGKILL.

A graceful stop of the autoscaler (SIGTERM) stops its workers too (``local_stop_on_exit``);
a crash or ``kill -9`` leaves them running for the next instance to adopt.

Every worker is recorded in a state file (``local_workers.json`` in the state directory) with
its pid and its start time from ``/proc``, so after a restart (or on a standby taking over) the
autoscaler adopts the workers still running and never signals a pid the kernel has reused. A
worker does not die with the autoscaler: it stays in the autoscaler's process group (a
supervisor that stops the group stops them too) but outlives a ``kill -9`` of the autoscaler
alone, to be adopted by the next instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import os
import secrets
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hms_contracts.config import ScalePolicy

from .ports import BackendError

log = logging.getLogger(__name__)

STATE_FILE = "local_workers.json"
#: imported once by the fork server, so that a worker starts without importing them again;
#: ``__main__`` too: a child otherwise imports the parent's main script (when it was started
#: from a file, e.g. a test runner) before it runs (``python -m hms_autoscaler`` never is)
PRELOAD = ("__main__", "hms_kit", "hms_contracts", "faststream.nats", "aiohttp.web")


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass
class LocalWorker:
    """One worker process of a pool, as the state file records it."""

    pool: str  # <namespace>.<pool>
    instance_id: str
    pid: int
    start: int | None
    stopping: bool = False

    def alive(self) -> bool:
        return self.start is not None and start_time(self.pid) == self.start


def _nothing() -> None:
    """The fork server's first child: it only makes the server finish its imports."""


def _worker_main(module: str, env: dict[str, str], log_path: str) -> None:
    """Runs in the forked child: become a worker process (same process group, own log)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [module]
    importlib.import_module(module + ".__main__").main()


class LocalWorkers:
    """Worker processes of every pool this autoscaler runs locally."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        module: str = "hms_worker_pool",
        launch: Literal["fork", "exec"] = "fork",
        drain_s: float = 30.0,
        nats_url: str | None = None,
        base_env: dict[str, str] | None = None,
        max_workers: int = 32,
    ) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / STATE_FILE
        self.log_dir = state_dir / "workers"
        self.module = module
        self.launch = launch
        self.drain_s = drain_s
        self.nats_url = nats_url
        self.max_workers = max_workers
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.pools: dict[str, list[LocalWorker]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._ctx: Any = None
        self._warming: asyncio.Future[Any] | None = None
        self._lock = threading.Lock()  # the warm-up and a first fork may run in two threads

    # --- the port -------------------------------------------------------------------------

    async def adopt(self) -> None:
        try:
            entries = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); adopting no workers", self.state_file, exc)
            return
        adopted = 0
        for entry in entries.get("workers", []):
            try:
                worker = LocalWorker(**entry)
            except TypeError:
                continue
            if not worker.alive() or any(
                w.pid == worker.pid for w in self.pools.get(worker.pool, [])
            ):
                continue
            self.pools.setdefault(worker.pool, []).append(worker)
            adopted += 1
            if worker.stopping:
                self._drain(worker)
        self._save()
        if adopted:
            log.info("adopted %d running worker(s) from %s", adopted, self.state_file)

    async def workers(self, policy: ScalePolicy) -> int:
        # a local pool exists: the fork server imports the worker now, in the background,
        # rather than on the first scale-up (and not at all while no pool is local)
        self._warm_up()
        return len(self._running(policy.pool_id))

    def _warm_up(self) -> asyncio.Future[Any] | None:
        if self.launch == "fork" and self._warming is None:
            self._warming = asyncio.ensure_future(asyncio.to_thread(self._fork_server))
        return self._warming

    async def warm(self) -> None:
        """Start the fork server now (if forking) and wait until it has imported the worker."""
        warming = self._warm_up()
        if warming is not None:
            await warming

    async def scale(self, policy: ScalePolicy, desired: int) -> None:
        running = self._running(policy.pool_id)
        if desired > len(running):
            # every pool's workers count against one machine's cap, draining ones too
            room = self.max_workers - len(self.all_workers())
            wanted = desired - len(running)
            started = await asyncio.gather(
                *(self._start(policy) for _ in range(max(min(wanted, room), 0))),
                return_exceptions=True,
            )
            failed = [e for e in started if isinstance(e, BaseException)]
            self._save()
            if wanted > room:
                raise BackendError(
                    f"pool {policy.pool_id}: {wanted} more worker(s) wanted, room for "
                    f"{max(room, 0)} under local_max_workers {self.max_workers}"
                )
            if failed:
                raise BackendError(
                    f"pool {policy.pool_id}: {len(failed)} worker(s) failed to start: {failed[0]}"
                )
        elif desired < len(running):
            for worker in reversed(running[desired:]):  # the newest first
                self._drain(worker)
            self._save()

    async def close(self) -> None:
        """Stop waiting on drains (the workers carry on; the next leader adopts them)."""
        if self._warming is not None:
            with contextlib.suppress(Exception):
                await self._warming
        for task in list(self._drains):
            task.cancel()
        for task in list(self._drains):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._save()

    def stop_all(self) -> int:
        """SIGTERM every worker (each drains: it hands back the run in hand and exits), for a
        graceful stop of the autoscaler; returns how many were told. A worker adopted from a
        previous instance is in that instance's process group, which a supervisor stopping
        this one's group would not reach."""
        told = 0
        for worker in self.all_workers():
            self._signal(worker, signal.SIGTERM)
            worker.stopping = True
            told += 1
        self._save()
        return told

    # --- starting ---------------------------------------------------------------------------

    def _running(self, pool: str) -> list[LocalWorker]:
        workers = [w for w in self.pools.get(pool, []) if w.alive()]
        self.pools[pool] = workers
        return [w for w in workers if not w.stopping]

    def worker_env(self, policy: ScalePolicy, instance_id: str) -> dict[str, str]:
        """The autoscaler's environment without its own settings (its NATS password stays
        here), with the pool's: the worker's id, port, state directory and concurrency."""
        env = {k: v for k, v in self.base_env.items() if not k.startswith("HMS_AUTOSCALER_")}
        prefix = "HMS_WORKER_POOL_"
        env[prefix + "INSTANCE_ID"] = instance_id
        env[prefix + "HTTP_PORT"] = "0"
        env.setdefault(prefix + "STATE_DIR", str(self.state_dir / "pools" / policy.pool_id))
        if self.nats_url is not None:
            env.setdefault(prefix + "NATS_URL", self.nats_url)
        if policy.worker_concurrency is not None:
            env[prefix + "CONCURRENCY"] = str(policy.worker_concurrency)
        return env

    async def _start(self, policy: ScalePolicy) -> LocalWorker:
        instance_id = f"{policy.name[:40]}-{secrets.token_hex(4)}"
        env = self.worker_env(policy, instance_id)
        for folder in (Path(env["HMS_WORKER_POOL_STATE_DIR"]), self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{policy.pool_id}-{instance_id}.log"
        if self.launch == "fork":
            pid = await asyncio.to_thread(self._fork, env, log_path)
        else:
            pid = self._exec(env, log_path)
        worker = LocalWorker(policy.pool_id, instance_id, pid, start_time(pid))
        self.pools.setdefault(policy.pool_id, []).append(worker)
        log.info("pool %s: started worker %s (pid %d)", policy.pool_id, instance_id, pid)
        return worker

    def _fork_server(self) -> Any:
        with self._lock:
            return self._fork_server_locked()

    def _fork_server_locked(self) -> Any:
        if self._ctx is None:
            self._ctx = multiprocessing.get_context("forkserver")
            # this module too: a child unpickles its target, _worker_main, from here
            preload = [*PRELOAD, __name__, self.module, f"{self.module}.__main__"]
            self._ctx.set_forkserver_preload(preload)
            # the server imports what it preloads before its first fork: one now, for nothing
            first = self._ctx.Process(target=_nothing, daemon=False)
            first.start()
            first.join()
        return self._ctx

    def _fork(self, env: dict[str, str], log_path: Path) -> int:
        proc = self._fork_server().Process(
            target=_worker_main, args=(self.module, env, str(log_path)), daemon=False
        )
        proc.start()
        # a worker outlives this process: multiprocessing must not join it at our exit
        multiprocessing.process._children.discard(proc)  # type: ignore[attr-defined]
        assert proc.pid is not None
        return int(proc.pid)

    def _exec(self, env: dict[str, str], log_path: Path) -> int:
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return proc.pid

    # --- stopping ---------------------------------------------------------------------------

    def _drain(self, worker: LocalWorker) -> None:
        worker.stopping = True
        task = asyncio.ensure_future(self._stop(worker))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _stop(self, worker: LocalWorker) -> None:
        """SIGTERM, up to ``drain_s`` for the worker to hand back its work, then SIGKILL."""
        self._signal(worker, signal.SIGTERM)
        log.info(
            "pool %s: draining worker %s (pid %d)", worker.pool, worker.instance_id, worker.pid
        )
        deadline = asyncio.get_running_loop().time() + self.drain_s
        while worker.alive() and asyncio.get_running_loop().time() < deadline:
            self._reap(worker)
            await asyncio.sleep(0.1)
        if worker.alive():
            log.warning(
                "pool %s: worker %s did not drain in %gs; killing it",
                worker.pool,
                worker.instance_id,
                self.drain_s,
            )
            self._signal(worker, signal.SIGKILL)
        self._reap(worker)
        self._save()

    @staticmethod
    def _signal(worker: LocalWorker, sig: signal.Signals) -> None:
        if worker.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(worker.pid, sig)

    @staticmethod
    def _reap(worker: LocalWorker) -> None:
        # our exec'd children would stay zombies until waited for
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(worker.pid, os.WNOHANG)

    def _save(self) -> None:
        alive = [asdict(w) for ws in self.pools.values() for w in ws if w.alive()]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"workers": alive}, indent=1))
        tmp.replace(self.state_file)

    def all_workers(self) -> list[LocalWorker]:
        """Every worker alive, of every pool (draining ones too)."""
        return [w for ws in self.pools.values() for w in ws if w.alive()]
