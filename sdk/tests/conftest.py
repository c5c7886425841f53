"""A nats-server with an admin and namespace clients configured from the topology, and the
streams and config bucket the SDK uses, created as the admin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from hms_contracts import specs, topology
from hms_testing.servers import LocalNats
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

NS, OTHER = "usds_unemployment", "ssa"
PASSWORDS = {"admin": "admin-secret", NS: "usds-secret", OTHER: "ssa-secret"}
DURABLE = "my-app"


@dataclass
class Secured:
    server: LocalNats

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, namespace: str) -> dict[str, str]:
        """Connection keywords of a namespace's client."""
        return {
            "url": self.url,
            "user": topology.namespace_user(namespace),
            "password": PASSWORDS[namespace],
        }

    async def admin(self) -> Client:
        return await nats.connect(self.url, user="admin", password=PASSWORDS["admin"])


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    users: dict[str, dict[str, object]] = {"admin": {"password": PASSWORDS["admin"]}}
    for ns in (NS, OTHER):
        users[topology.namespace_user(ns)] = {
            "password": PASSWORDS[ns],
            "permissions": topology.namespace_permissions(ns, (DURABLE,)),
        }
    server = LocalNats(tmp_path / "nats", users=users)
    server.start()
    try:
        yield Secured(server)
    finally:
        server.stop()


@pytest.fixture
async def admin(secured: Secured) -> AsyncIterator[Client]:
    nc = await secured.admin()
    js = nc.jetstream()
    for spec in (specs.METRICS, specs.ALERTS, specs.INCIDENTS, specs.EVENTS, specs.CONFIG_CHANGES):
        await js.add_stream(
            StreamConfig(name=spec.name, subjects=list(spec.subjects), storage=StorageType.FILE)
        )
    # the registry's bucket, as the admin provisions it
    await js.create_key_value(
        KeyValueConfig(bucket=topology.CONFIG_BUCKET, history=16, direct=True)
    )
    try:
        yield nc
    finally:
        await nc.close()
