"""Service processes under test: started as real subprocesses, probed over HTTP, always reaped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from hms_kit.settings import env_prefix
from hms_stack.natsserver import free_port

from .metrics import metric_value

LOG_TAIL_LINES = 40


class ServiceStartError(AssertionError):
    """A service process did not become healthy; the message carries its log tail."""


class ServiceProcess:
    """One service process: ``python -m <module>`` or ``python <script>``, its log and HTTP port."""

    def __init__(
        self, service: str, argv: list[str], env: dict[str, str], log_path: Path, http_port: int
    ) -> None:
        self.service = service
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.http_port = http_port
        self.instance_id = env[env_prefix(service) + "INSTANCE_ID"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.service} was never started"
        return self.proc.pid

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def state_dir(self) -> Path:
        """Where the service keeps its SQLite (``STATE_DIR``)."""
        return Path(self.env[env_prefix(self.service) + "STATE_DIR"])

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes its children too
            )

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        """Status code and JSON body of ``/healthz``."""
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.http_url + "/healthz") as resp,
        ):
            return resp.status, json.loads(await resp.text())

    async def metrics_text(self) -> str:
        """The Prometheus exposition from ``/metrics``."""
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.http_url + "/metrics") as resp,
        ):
            assert resp.status == 200, f"/metrics answered {resp.status}"
            return await resp.text()

    async def metric(self, sample: str) -> float:
        """The value of one sample (summed over its labels) on ``/metrics``."""
        return metric_value(await self.metrics_text(), sample)

    async def wait_healthy(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until ``/healthz`` answers 200; fail with the log tail if it does not."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.returncode is not None:
                raise ServiceStartError(
                    f"{self.service} exited with {self.returncode} before it was healthy; "
                    f"log tail ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                status, body = await self.healthz()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = repr(exc)
            else:
                if status == 200:
                    return body
                last = f"{status} {body}"
            await asyncio.sleep(0.1)
        raise ServiceStartError(
            f"{self.service} not healthy on {self.http_url}/healthz within {timeout:g} s "
            f"(last: {last}); log tail ({self.log_path}):\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """kill -9 the process and its group; no drain, no goodbye."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    async def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL and fail if it does not come)."""
        assert self.proc is not None, f"{self.service} was never started"
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"{self.service} did not exit within {timeout:g} s of SIGTERM; "
                    f"log tail:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)
        return code

    async def restart(self, timeout: float = 20.0) -> None:
        """Kill it if it still runs, start it again with the same environment, wait for health."""
        self.kill()
        self.spawn()
        await self.wait_healthy(timeout)


class ServiceLauncher:
    """Starts service processes against one NATS server and reaps every one of them."""

    def __init__(self, workdir: Path, nats_url: str) -> None:
        self.workdir = workdir
        self.nats_url = nats_url
        self.started: list[ServiceProcess] = []

    async def __call__(
        self,
        target: str | Path,
        *,
        service: str | None = None,
        env: Mapping[str, str] | None = None,
        heartbeat_interval_s: float = 0.5,
        state_dir: Path | None = None,
        timeout: float = 20.0,
    ) -> ServiceProcess:
        """Start ``target`` (a module name, or a script path) and wait until it is healthy.

        ``service`` is the topology name whose env prefix the settings use; for a module
        ``hms_<service>`` it is derived. ``env`` adds or overrides variables (unprefixed keys
        are passed as they are).
        """
        if isinstance(target, Path):
            argv = [sys.executable, str(target)]
            module = ""
        else:
            argv = [sys.executable, "-m", target]
            module = target
        if service is None:
            if not module.startswith("hms_"):
                raise ValueError(f"say which service {target} runs as (service=...)")
            service = module.removeprefix("hms_").replace("_", "-")
        n = len(self.started) + 1
        home = self.workdir / f"{service}-{n}"
        home.mkdir(parents=True, exist_ok=True)
        prefix = env_prefix(service)
        full = dict(os.environ)
        full.update(
            {
                "PYTHONUNBUFFERED": "1",
                prefix + "NATS_URL": self.nats_url,
                prefix + "HTTP_PORT": str(free_port()),
                prefix + "HEARTBEAT_INTERVAL_S": str(heartbeat_interval_s),
                prefix + "STATE_DIR": str(state_dir or home),
                prefix + "LOG_FORMAT": "json",
                prefix + "INSTANCE_ID": f"test-{secrets.token_hex(4)}",
            }
        )
        full.update(env or {})
        proc = ServiceProcess(
            service, argv, full, home / "service.log", int(full[prefix + "HTTP_PORT"])
        )
        self.started.append(proc)
        proc.spawn()
        await proc.wait_healthy(timeout)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.kill()
