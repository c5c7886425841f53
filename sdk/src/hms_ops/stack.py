"""The embedded stack behind ``hms-ops up``: nats-server, provisioning, supervised services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import nats
from hms_contracts import specs, topology
from hms_kit import provision
from hms_kit.natsserver import NatsServer, free_port
from hms_kit.provision import provision_shared
from hms_kit.settings import env_prefix
from nats.js import JetStreamContext

from .connect import admin_connect as admin_connect  # re-exported: tests, status
from .errors import StackError as StackError  # re-exported
from .launch import LauncherName, launcher
from .state import (
    ADMIN_USER,
    StatePaths,
    load_credentials,
    nats_users,
    password_hashes,
    read_stack_file,
    write_stack_file,
)
from .supervisor import Child, Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpOptions:
    """What ``hms-ops up`` was asked for."""

    paths: StatePaths
    nats_port: int = 4222
    console_port: int = 8700
    host: str = "127.0.0.1"
    ready_timeout_s: float = 30.0
    heartbeat_interval_s: float = 2.0
    drain_timeout_s: float = 10.0
    launcher: LauncherName = "fork"


def stack_server(paths: StatePaths, creds: dict[str, str], host: str, port: int) -> NatsServer:
    """The embedded nats-server as ``up`` configures it: loopback, JetStream, one user each."""
    return NatsServer(
        store_dir=paths.nats,
        name="hms-ops",
        host=host,
        port=port,
        users=nats_users(password_hashes(paths, creds)),
        log_file=paths.logs / "nats-server.log",
    )


async def provision_stack(js: JetStreamContext) -> None:
    """What the stack's admin provisions before any service starts: the shared streams and
    buckets (only the admin may create or change them), then every service's streams and
    consumers, so no service waits for another's."""
    await provision_shared(js)
    owned = [s for s in specs.STREAMS if s not in specs.SHARED_STREAMS]
    await provision(js, streams=owned, consumers=specs.CONSUMERS)


async def provision_with(url: str, user: str, password: str) -> None:
    """``hms-ops provision``: what ``up`` provisions, on any server, as its admin user."""
    try:
        nc = await nats.connect(
            url, user=user or None, password=password or None, max_reconnect_attempts=0
        )
    except Exception as exc:
        raise StackError(f"cannot connect to {url} as {user!r}: {exc}") from exc
    try:
        await provision_stack(nc.jetstream())
    except Exception as exc:
        raise StackError(f"provisioning {url} as {user!r} failed: {exc}") from exc
    finally:
        await nc.close()


def service_children(opts: UpOptions, nats_url: str, creds: dict[str, str]) -> list[Child]:
    """One child per service, each with its own NATS user, port, state folder and log."""
    children = []
    for svc in topology.SERVICES:
        port = opts.console_port if svc.name == "console" else free_port(opts.host)
        prefix = env_prefix(svc.name)
        state = opts.paths.services / svc.name
        state.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            prefix + "NATS_URL": nats_url,
            prefix + "NATS_USER": f"hms-{svc.name}",
            prefix + "NATS_PASSWORD": creds[svc.name],
            prefix + "HTTP_HOST": opts.host,
            prefix + "HTTP_PORT": str(port),
            prefix + "STATE_DIR": str(state),
            prefix + "LOG_FORMAT": "json",
            prefix + "HEARTBEAT_INTERVAL_S": str(opts.heartbeat_interval_s),
            prefix + "DRAIN_TIMEOUT_S": str(opts.drain_timeout_s),
        }
        children.append(
            Child(
                name=svc.name,
                module=svc.module,
                env=env,
                log_path=opts.paths.logs / f"{svc.name}.log",
                http_url=f"http://{opts.host}:{port}",
            )
        )
    return children


class Stack:
    """A running embedded stack."""

    def __init__(self, opts: UpOptions) -> None:
        self.opts = opts
        self.server: NatsServer | None = None
        self.supervisor: Supervisor | None = None
        self.started_at = datetime.now(UTC)
        self.ready_s: float | None = None
        self.healthy: dict[str, bool] = {}
        self._nats_watch: asyncio.Task[None] | None = None
        self._owns_stack_file = False
        self._lock: TextIO | None = None

    async def start(self) -> None:
        t0 = time.monotonic()
        paths = self.opts.paths
        paths.make()
        # one stack per state folder: the kernel drops the lock when its holder dies
        self._lock = open(paths.root / "lock", "a+")  # noqa: SIM115, ASYNC230 - held for the stack's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            previous = read_stack_file(paths) or {}
            self._lock.close()
            self._lock = None
            raise StackError(
                f"a stack is already running from {paths.root} (pid {previous.get('pid', '?')}); "
                "stop it first or set HMS_STATE_DIR to another folder"
            ) from None
        try:
            creds = load_credentials(paths)
        except ValueError as exc:  # CredentialsError, or a credentials file that is not JSON
            raise StackError(f"{paths.credentials}: {exc}") from None
        self.server = stack_server(paths, creds, self.opts.host, self.opts.nats_port)
        try:
            await asyncio.to_thread(self.server.start)
        except Exception as exc:
            raise StackError(
                f"nats-server did not start on {self.opts.host}:{self.opts.nats_port}: {exc} "
                f"(is the port taken? try --nats-port; log: {paths.logs / 'nats-server.log'})"
            ) from exc
        nc = await admin_connect(self.server.url, creds[ADMIN_USER])
        try:
            await provision_stack(nc.jetstream())
        finally:
            await nc.close()
        self.supervisor = Supervisor(
            service_children(self.opts, self.server.url, creds),
            launcher=launcher(self.opts.launcher),
            drain_timeout_s=self.opts.drain_timeout_s,
        )
        await self.supervisor.start()
        self._nats_watch = asyncio.create_task(self._keep_nats())
        self.healthy = await self.supervisor.wait_healthy(self.opts.ready_timeout_s)
        self.ready_s = time.monotonic() - t0
        write_stack_file(paths, self.describe())
        self._owns_stack_file = True

    async def _keep_nats(self) -> None:
        assert self.server is not None
        while True:
            await asyncio.sleep(0.5)
            if not self.server.running():
                log.warning("nats-server died; restarting it on the same port and store")
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.server.restart)

    def describe(self) -> dict[str, Any]:
        assert self.server is not None
        assert self.supervisor is not None
        return {
            "pid": os.getpid(),
            "state_dir": str(self.opts.paths.root),
            "nats_url": self.server.url,
            "nats_pid": self.server.pid,
            "started_at": self.started_at.isoformat(),
            "ready_s": self.ready_s,
            "heartbeat_interval_s": self.opts.heartbeat_interval_s,
            "dashboard_url": self.supervisor.children["console"].http_url,
            "services": {
                c.name: {"pid": c.pid, "http_url": c.http_url, "log": str(c.log_path)}
                for c in self.supervisor.children.values()
            },
        }

    async def stop(self) -> None:
        if self._nats_watch is not None:
            self._nats_watch.cancel()
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
        if self._owns_stack_file:  # never another stack's
            with contextlib.suppress(FileNotFoundError):
                self.opts.paths.stack_file.unlink()
        if self._lock is not None:
            self._lock.close()


async def run_up(opts: UpOptions, on_ready: Callable[[Stack], None]) -> int:
    """Start the stack, report it, and run until SIGINT or SIGTERM; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = Stack(opts)
    try:
        start = asyncio.create_task(stack.start())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({start, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:  # interrupted while starting
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await start
            return 130
        stopper.cancel()
        start.result()
        on_ready(stack)
        if not all(stack.healthy.values()):
            return 1
        await stop.wait()
        return 0
    finally:
        await stack.stop()
