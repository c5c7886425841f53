"""A namespace's client reaches its own namespace only: the bus refuses the rest, and the SDK
says so with PermissionDenied naming what was refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hms_ops import NOC, Metric, PermissionDenied
from hms_ops.noc import AsyncNOC
from nats.aio.client import Client

from .conftest import NS, OTHER, Secured


@pytest.fixture
async def intruder(secured: Secured, admin: Client) -> AsyncIterator[AsyncNOC]:
    """The client of usds_unemployment, acting as if it were ssa's."""
    noc = await NOC.aconnect(OTHER, **secured.client(NS), flush_interval=60)
    try:
        yield noc
    finally:
        await noc.bus.nc.close()


async def test_writing_config_in_another_namespace_is_denied(intruder: AsyncNOC) -> None:
    with pytest.raises(PermissionDenied, match=r"register ssa\.metric\.api\.latency_p99"):
        await intruder.register(Metric(name="api.latency_p99", unit="ms"))


async def test_publishing_an_event_in_another_namespace_is_denied(intruder: AsyncNOC) -> None:
    with pytest.raises(PermissionDenied, match=r"publish ops\.event\.ssa\.deploy_finished"):
        await intruder.publish("deploy_finished", {"version": "1"})


async def test_reading_another_namespaces_config_is_denied(intruder: AsyncNOC) -> None:
    with pytest.raises(PermissionDenied, match="ssa"):
        await intruder.objects()


async def test_pushing_metrics_into_another_namespace_is_denied(intruder: AsyncNOC) -> None:
    intruder.observe("api.latency_ms", 1.0)
    with pytest.raises(PermissionDenied, match=r"ops\.metric\.ssa"):
        await intruder.flush(timeout=5)


@pytest.mark.parametrize("durable", [None, "my-app"])
async def test_following_another_namespaces_incidents_is_denied(
    intruder: AsyncNOC, durable: str | None
) -> None:
    with pytest.raises(PermissionDenied, match="ssa"):
        await intruder.incidents(durable=durable)


async def test_the_own_namespace_still_works_beside_the_refusals(
    secured: Secured, admin: Client
) -> None:
    async with NOC.aconnect(NS, **secured.client(NS)) as noc:
        await noc.register(Metric(name="api.latency_p99", unit="ms"))
        assert [o.key() for o in await noc.objects()] == [f"{NS}.metric.api.latency_p99"]
        assert await noc.objects("alert") == []
        await noc.publish("deploy_finished", {"version": "1"})
        await noc.incidents(durable="my-app")
        assert noc.bus.violations == []
