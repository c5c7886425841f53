"""The embedded stack behind ``hms-ops up``: nats-server, provisioning, supervised services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import secrets
import signal
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import nats
from hms_contracts import specs, topology
from hms_kit import provision, publish
from hms_kit.provision import provision_shared
from hms_kit.settings import env_prefix
from hms_kit.tls import client_tls
from hms_ops.state import ADMIN_USER, StatePaths, read_stack_file
from nats.aio.client import Client
from nats.js import JetStreamContext

from .errors import StackError
from .launch import LauncherName, launcher
from .ledger import StreamLedger, data_loss_alert
from .leftovers import reap, record
from .namespaces import namespace_users
from .natsserver import NatsServer, free_port
from .natswatch import NatsKeeper
from .ports import check_ports
from .state import load_credentials, nats_users, password_hashes, write_stack_file
from .supervisor import Child, Supervisor

log = logging.getLogger(__name__)

#: how often ``up`` notes how far each stream got (to notice messages lost on a recovery)
FOLLOW_STREAMS_S = 2.0


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
    #: a service or nats-server that does not answer its /healthz (or, for nats-server, says
    #: JetStream is unhealthy) for this long is killed and restarted
    unhealthy_after_s: float = 3.0
    #: where nats-server listens for clients (``host`` when None); anything but loopback
    #: needs ``nats_tls`` (users and passwords are always on)
    nats_host: str | None = None
    nats_tls: NatsTls | None = None


@dataclass(frozen=True)
class NatsTls:
    """nats-server's certificate and key, and the CA that signed it (services trust it)."""

    cert: Path
    key: Path
    ca: Path

    def server_block(self) -> dict[str, Any]:
        return {"cert_file": str(self.cert), "key_file": str(self.key), "ca_file": str(self.ca)}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def check_exposure(opts: UpOptions) -> None:
    """Refuse to put NATS on a non-loopback address without authentication and TLS.

    ``up`` always gives every user a password; beyond loopback the passwords (and every
    message) must not cross the network in clear, so TLS is required too."""
    host = opts.nats_host or opts.host
    if is_loopback(host):
        return
    if opts.nats_tls is None:
        raise StackError(
            f"refusing to bind NATS to {host}, which is not a loopback address, without TLS: "
            "give --nats-tls-cert, --nats-tls-key and --nats-tls-ca (passwords are always on), "
            "or keep the default 127.0.0.1"
        )
    for what, path in (
        ("--nats-tls-cert", opts.nats_tls.cert),
        ("--nats-tls-key", opts.nats_tls.key),
        ("--nats-tls-ca", opts.nats_tls.ca),
    ):
        if not path.is_file():
            raise StackError(f"{what} {path}: no such file")


async def _connection_error(exc: Exception) -> None:
    """One line, not nats-py's traceback: the watchdog restarting the server is expected."""
    log.warning("admin connection: %s", exc or type(exc).__name__)


def stack_server(
    paths: StatePaths,
    creds: dict[str, str],
    host: str,
    port: int,
    *,
    name: str | None = None,
    tls: NatsTls | None = None,
) -> NatsServer:
    """The embedded nats-server as ``up`` configures it: loopback, JetStream, one user each
    with a bcrypt-hashed password, a monitoring port for the watchdog, dying with ``up``."""
    hashes = password_hashes(paths, creds)
    return NatsServer(
        store_dir=paths.nats,
        # a unique name: no stack mistakes another's server for its own
        name=name or f"hms-ops-{secrets.token_hex(4)}",
        host=host,
        port=port,
        # read at every (re)start: the namespace clients added or revoked meanwhile
        users_from=lambda: nats_users(hashes, namespace_users(paths)),
        log_file=paths.logs / "nats-server.log",
        # the watchdog's /healthz, always on loopback
        monitor_host="127.0.0.1",
        monitor_port=free_port("127.0.0.1"),
        die_with_parent=True,
        tls=tls.server_block() if tls else None,
    )


async def provision_stack(js: JetStreamContext, *, replicas: int | None = None) -> None:
    """What the stack's admin provisions before any service starts: the shared streams and
    buckets (only the admin may create or change them), then every service's streams and
    consumers, so no service waits for another's. ``replicas``: 3 on a 3-node cluster."""
    await provision_shared(js, replicas=replicas)
    owned = [s for s in specs.STREAMS if s not in specs.SHARED_STREAMS]
    await provision(js, streams=owned, consumers=specs.CONSUMERS, replicas=replicas)


async def provision_with(
    url: str,
    user: str,
    password: str,
    *,
    replicas: int | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """``hms-ops provision``: what ``up`` provisions, on any server, as its admin user."""
    try:
        nc = await nats.connect(
            [u.strip() for u in url.split(",") if u.strip()],
            user=user or None,
            password=password or None,
            max_reconnect_attempts=0,
            tls=tls,
        )
    except Exception as exc:
        raise StackError(f"cannot connect to {url} as {user!r}: {exc}") from exc
    try:
        await provision_stack(nc.jetstream(), replicas=replicas)
    except Exception as exc:
        raise StackError(f"provisioning {url} as {user!r} failed: {exc}") from exc
    finally:
        await nc.close()


def local_worker_env(nats_url: str, creds: dict[str, str]) -> dict[str, str]:
    """What the autoscaler hands the worker-pool processes it starts (its local backend): the
    worker-pool's own NATS user, never the autoscaler's."""
    prefix = env_prefix("worker-pool")
    return {
        prefix + "NATS_URL": nats_url,
        prefix + "NATS_USER": "hms-worker-pool",
        prefix + "NATS_PASSWORD": creds["worker-pool"],
        prefix + "LOG_FORMAT": "json",
    }


def service_children(opts: UpOptions, nats_url: str, creds: dict[str, str]) -> list[Child]:
    """One child per service, each with its own NATS user, port, state folder and log."""
    children = []
    for svc in topology.SERVICES:
        port = free_port(opts.host)
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
        if opts.nats_tls is not None:
            env[prefix + "NATS_TLS_CA"] = str(opts.nats_tls.ca)
        if svc.name == "autoscaler":
            env |= local_worker_env(nats_url, creds)
        if svc.name == "console":  # the API and dashboard on the console port
            env[prefix + "API_HOST"] = opts.host
            env[prefix + "API_PORT"] = str(opts.console_port)
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
        self.stack_id = secrets.token_hex(4)
        self.server: NatsServer | None = None
        self.keeper: NatsKeeper | None = None
        self.supervisor: Supervisor | None = None
        self.started_at = datetime.now(UTC)
        self.ready_s: float | None = None
        self.healthy: dict[str, bool] = {}
        self.data_loss: list[str] = []
        self._admin: Client | None = None
        self._ledger = StreamLedger(opts.paths.nats / "stream-sequences.json")
        self._tasks: list[asyncio.Task[None]] = []
        self._owns_stack_file = False
        self._lock: TextIO | None = None

    async def start(self) -> None:
        t0 = time.monotonic()
        opts, paths = self.opts, self.opts.paths
        check_exposure(opts)
        nats_host = opts.nats_host or opts.host
        roles = {
            "NATS (--nats-port)": opts.nats_port,
            "the console (--console-port)": opts.console_port,
        }
        check_ports(nats_host, roles, free=False)  # one port per role, before touching anything
        with writing_state(paths):
            paths.make()
            self._take_lock()
            self._reap_leftovers()
            creds = load_credentials(paths)
        check_ports(nats_host, roles)
        self.server = stack_server(
            paths,
            creds,
            nats_host,
            opts.nats_port,
            name=f"hms-ops-{self.stack_id}",
            tls=opts.nats_tls,
        )
        self.keeper = NatsKeeper(
            self.server, unhealthy_after_s=opts.unhealthy_after_s, after_start=self._nats_started
        )
        with writing_state(paths):
            self.server.write_config()
        try:
            await self.keeper.start()
        except Exception as exc:
            raise StackError(
                f"nats-server did not start on {nats_host}:{opts.nats_port}: {exc} "
                f"(log: {paths.logs / 'nats-server.log'})"
            ) from exc
        self._admin = await nats.connect(
            self.server.url,
            user=ADMIN_USER,
            password=creds[ADMIN_USER],
            name=f"hms-ops-up:{self.stack_id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
            error_cb=_connection_error,
            tls=client_tls(opts.nats_tls.ca) if opts.nats_tls else None,
        )
        await provision_stack(self._admin.jetstream())
        await self._check_streams()
        self.supervisor = Supervisor(
            service_children(opts, self.server.url, creds),
            launcher=launcher(opts.launcher),
            drain_timeout_s=opts.drain_timeout_s,
            hang_after_s=opts.unhealthy_after_s,
            on_restart=lambda _: self._record(),
        )
        await self.supervisor.start()
        self._tasks.append(asyncio.create_task(self.keeper.keep()))
        self.healthy = await self.supervisor.wait_healthy(opts.ready_timeout_s)
        self.ready_s = time.monotonic() - t0
        with writing_state(paths):
            write_stack_file(paths, self.describe())
        self._owns_stack_file = True
        self._tasks.append(asyncio.create_task(self._follow_streams()))

    def _take_lock(self) -> None:
        """One stack per state folder: the kernel drops the lock when its holder dies."""
        paths = self.opts.paths
        self._lock = open(paths.root / "lock", "a+")  # noqa: SIM115 - held for the stack's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                previous = read_stack_file(paths) or {}
            except StackError:
                previous = {}
            self._lock.close()
            self._lock = None
            raise StackError(
                f"a stack is already running from {paths.root} (pid {previous.get('pid', '?')}); "
                "stop it first or set HMS_STATE_DIR to another folder"
            ) from None

    def _reap_leftovers(self) -> None:
        """A stack file we find while holding the lock belongs to a stack that died without
        cleaning up: kill what it recorded and still runs (same pid, same start time)."""
        try:
            previous = read_stack_file(self.opts.paths)
        except StackError as exc:
            log.warning("%s; ignoring it", exc)
            return
        if not previous:
            return
        reaped = reap(list(previous.get("processes") or []))
        if reaped:
            log.warning(
                "stopped %d process(es) left running by a stack that died (pid %s): %s",
                len(reaped),
                previous.get("pid", "?"),
                ", ".join(f"{p['role']} (pid {p['pid']})" for p in reaped),
            )
        self.opts.paths.stack_file.unlink(missing_ok=True)

    async def _nats_started(self) -> None:
        """After a restart: report lost data; tell the stack file the new pid."""
        await self._check_streams()
        self._record()

    async def _check_streams(self, *, recovered: bool = True) -> None:
        if self._admin is None:
            return
        try:
            lost = await self._ledger.update(self._admin.jetstream(), recovered=recovered)
        except Exception as exc:
            log.warning("cannot read the streams' state: %s", exc)
            return
        self.data_loss.extend(str(loss) for loss in lost)
        if lost:
            self._record()
        for loss in lost:  # an alert like any other: the incident engine takes it from here
            try:
                await publish(self._admin.jetstream(), data_loss_alert(loss, datetime.now(UTC)))
            except Exception as exc:
                log.error("cannot raise the alert for %s: %s", loss, exc)

    async def _follow_streams(self) -> None:
        while True:  # how far each stream got, so that a later recovery can be checked
            await asyncio.sleep(FOLLOW_STREAMS_S)
            await self._check_streams(recovered=False)

    def _record(self) -> None:
        """Rewrite the stack file after a restart (only once the stack is up)."""
        if not self._owns_stack_file:
            return
        try:
            write_stack_file(self.opts.paths, self.describe())
        except OSError as exc:
            log.error("cannot update %s: %s", self.opts.paths.stack_file, exc.strerror)

    def describe(self) -> dict[str, Any]:
        assert self.server is not None
        assert self.supervisor is not None
        children = self.supervisor.children.values()
        processes = [
            record("up", os.getpid()),
            record("nats-server", self.server.pid),
            *(record(role, pid) for role, pid in self.supervisor.launcher.helpers().items()),
            *(record(c.name, c.pid) for c in children),
        ]
        return {
            "pid": os.getpid(),
            "stack_id": self.stack_id,
            "state_dir": str(self.opts.paths.root),
            "nats_url": self.server.url,
            "nats_server_name": self.server.name,
            "nats_pid": self.server.pid,
            "nats_monitor_url": self.server.monitor_url,
            "started_at": self.started_at.isoformat(),
            "ready_s": self.ready_s,
            "heartbeat_interval_s": self.opts.heartbeat_interval_s,
            "dashboard_url": f"http://{self.opts.host}:{self.opts.console_port}/dashboard",
            "services": {
                c.name: {"pid": c.pid, "http_url": c.http_url, "log": str(c.log_path)}
                for c in children
            },
            "processes": [p for p in processes if p is not None],
            "data_loss": self.data_loss,
        }

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._check_streams(recovered=False)
                await self._admin.close()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
        if self._owns_stack_file:  # never another stack's
            with contextlib.suppress(FileNotFoundError):
                self.opts.paths.stack_file.unlink()
        if self._lock is not None:
            self._lock.close()


@contextlib.contextmanager
def writing_state(paths: StatePaths) -> Iterator[None]:
    """Turn a failed write in the state folder into one line naming the file."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or paths.root
        raise StackError(
            f"cannot write {where}: {exc.strerror or exc}; make room or make it writable, or "
            "choose another state folder with --state-dir or HMS_STATE_DIR"
        ) from None


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
