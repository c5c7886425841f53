"""pytest plugin: a real nats-server, clients to it and service processes, per test.

Enable with ``pytest_plugins = ["hms_testing.plugin"]`` in the root ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from hms_stack.natsserver import read_server_info
from nats.aio.client import Client
from nats.js import JetStreamContext

from .processes import ServiceLauncher
from .servers import ExternalNats, NatsHandle, open_nats


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsHandle]:
    """A NATS server with JetStream for this test: local (default), ``NATS_URL`` or container."""
    server = open_nats(tmp_path / "nats")
    try:
        if not isinstance(server, ExternalNats):
            url = urlsplit(server.url)
            info = read_server_info(url.hostname or "127.0.0.1", url.port or 4222)
            assert info["server_name"] == server.name, f"{server.url} is not ours: {info}"
        yield server
    finally:
        if not isinstance(server, ExternalNats):
            server.stop()


async def connect(url: str, name: str = "hms-test") -> Client:
    """A test client that, like the services, reconnects forever."""
    return await nats.connect(
        url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2
    )


@pytest.fixture
async def nc(nats_server: NatsHandle) -> AsyncIterator[Client]:
    """A connected nats-py client, closed after the test."""
    client = await connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    """JetStream on the ``nc`` connection."""
    return nc.jetstream()


@pytest.fixture
def start_service(tmp_path: Path, nats_server: NatsHandle) -> Iterator[ServiceLauncher]:
    """``await start_service("hms_evaluator")``: a healthy service process, killed at teardown."""
    launcher = ServiceLauncher(tmp_path / "services", nats_server.url)
    try:
        yield launcher
    finally:
        launcher.close()
