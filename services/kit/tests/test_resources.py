"""Resources are opened once per process, handed to handlers by name, closed after them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

from faststream import Context
from faststream.nats import NatsRouter, TestNatsBroker
from hms_kit import Service, ServiceSettings
from hms_testing import NatsHandle, running, wait_until


@dataclass
class Store:
    """Stands for a service's store: records what handlers wrote and whether it is open."""

    rows: list[str] = field(default_factory=list)
    open: bool = True


def build(url: str, store: Store, opened: list[Store]) -> Service:
    router = NatsRouter()

    @router.subscriber("test.resources")
    async def on_note(body: str, store: Annotated[Store, Context("store")]) -> None:
        assert store.open, "a handler ran with a closed store"
        store.rows.append(body)

    @asynccontextmanager
    async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
        assert service.nc.is_connected, "resources open once the service is connected"
        opened.append(store)
        try:
            yield {"store": store}
        finally:
            store.open = False

    settings = ServiceSettings(nats_url=url, heartbeat_interval_s=60)
    return Service("console", settings, version="t", routers=(router,), resources=resources)


async def test_a_handler_is_tested_with_the_in_memory_broker_and_a_fake_resource() -> None:
    fake = Store()
    service = build("nats://127.0.0.1:1", Store(), [])
    service.broker.context.set_global("store", fake)
    async with TestNatsBroker(service.broker) as broker:
        await broker.publish("first", "test.resources")
    assert fake.rows == ["first"]


async def test_resources_open_once_reach_handlers_by_name_and_close_after_the_last_one(
    nats_server: NatsHandle,
) -> None:
    store, opened = Store(), list[Store]()
    service = build(nats_server.url, store, opened)
    async with running(service):
        for body in ("a", "b", "c"):
            await service.nc.publish("test.resources", body.encode())
        await wait_until(lambda: len(store.rows) == 3, timeout=5, message="three notes stored")
        assert store.open
    assert opened == [store]
    assert store.rows == ["a", "b", "c"]
    assert not store.open
