"""A console against a real nats-server, served on a free port, with one token per role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hms_console.app import create_service
from hms_console.settings import ConsoleSettings
from hms_console.testing import Responder, Running, make_tokens
from hms_contracts import specs
from hms_kit.provision import provision
from hms_testing import NatsHandle, running
from nats import connect as nats_connect
from nats.aio.client import Client


def settings_for(nats: NatsHandle, state: Path, **extra: Any) -> ConsoleSettings:
    return ConsoleSettings(
        nats_url=nats.url, state_dir=state, heartbeat_interval_s=60, api_port=0, **extra
    )


async def provision_all(nats: NatsHandle) -> None:
    """Every stream and bucket of the catalogue, as a full stack would have them."""
    nc = await nats_connect(nats.url)
    try:
        await provision(nc.jetstream(), streams=specs.STREAMS, buckets=specs.KV_BUCKETS)
    finally:
        await nc.close()


StartConsole = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start_console(nats_server: NatsHandle, tmp_path: Path) -> StartConsole:
    """Start a console with extra settings; it serves until the block ends."""

    @asynccontextmanager
    async def start(**extra: Any) -> AsyncIterator[Running]:
        service = create_service(settings_for(nats_server, tmp_path, **extra))
        await provision_all(nats_server)
        async with running(service):
            web = service.broker.context.get("web")
            await asyncio.wait_for(web.ready.wait(), 20)
            tokens = await make_tokens(service.js)
            yield Running(service, web.console, web.url, tokens)

    return start


@pytest.fixture
async def console(start_console: StartConsole) -> AsyncIterator[Running]:
    async with start_console() as found:
        yield found


@pytest.fixture
async def responder(nc: Client) -> AsyncIterator[Responder]:
    found = Responder()
    sub = await nc.subscribe("ops.request.*.>", cb=found.on_msg)
    await nc.flush()
    yield found
    await sub.unsubscribe()
