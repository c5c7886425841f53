"""A real nats-server configured exactly as ``hms-ops up`` configures it, seeded as a running
stack would leave it, and clients that attack it as each service's user."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from hms_contracts import ServiceHeartbeat, specs, subjects, topology
from hms_contracts.config import (
    Alert,
    ConfigEntry,
    ConfigObject,
    Job,
    Metric,
    Playbook,
    ScalePolicy,
)
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect
from hms_stack import namespaces
from hms_stack.natsserver import NatsServer, free_port
from hms_stack.stack import provision_stack, stack_server
from hms_stack.state import load_credentials
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError

CLIENT_NS, CLIENT_DURABLE = "usds_unemployment", "my-app"  # a namespace client of the stack
VICTIM = "victim"  # the instance id of every seeded registry entry and lease holder
DEAD_LETTER = "dlq.job.run.acme.seeded"


def _config_entry(obj: ConfigObject) -> bytes:
    document = {k: v for k, v in obj.document().items() if k != "kind"}
    entry = ConfigEntry(
        kind=obj.kind,
        object=document,
        generation=1,
        author=ADMIN_USER,
        written_at=datetime.now(UTC),
    )
    return entry.model_dump_json().encode()


#: one object of every kind in namespace acme, by registry key
CONFIG_SEED: dict[str, bytes] = {
    o.key(): _config_entry(o)
    for o in (
        Metric(namespace="acme", name="api.latency_p99"),
        Alert(namespace="acme", name="slow", metric="api.latency_p99", condition="> 1"),  # type: ignore[arg-type]
        Playbook(namespace="acme", name="rollback", steps=["notify oncall done"]),  # type: ignore[arg-type]
        Job.model_validate(
            {"namespace": "acme", "id": "rescore", "schedule": "0 0 * * *", "queue": "q"}
            | {"sla_minutes": 60, "command": ["true"]}
        ),
        ScalePolicy(namespace="acme", name="rescore_pool", max=5),
    )
}


@dataclass
class SecuredStack:
    paths: StatePaths
    server: NatsServer
    creds: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    async def admin(self) -> Client:
        return await admin_connect(self.url, self.creds[ADMIN_USER])


def heartbeat(service: str, instance_id: str = VICTIM) -> bytes:
    now = datetime.now(UTC)
    beat = ServiceHeartbeat.create(
        occurred_at=now,
        namespace="system",
        service=service,
        version="0.1.0",
        instance_id=instance_id,
        started_at=now,
        health="ok",
        http_url="http://127.0.0.1:1",
        pid=1,
        host="victim-host",
    )
    return beat.model_dump_json().encode()


async def seed(js: JetStreamContext) -> None:
    """What a running stack holds: every service registered, every singleton leading, a dead
    letter waiting, an incident filed."""
    registry = await js.key_value(specs.SERVICE_REGISTRY.bucket)
    for name in topology.SERVICE_NAMES:
        await registry.put(f"{name}.{VICTIM}", heartbeat(name))
    await renew_leases(js)
    await js.publish(DEAD_LETTER, b"poison", headers={"Nats-Msg-Id": "seeded-dead-letter"})
    await js.publish("ops.incident.acme.opened", b"{}", headers={"Nats-Msg-Id": "seeded-incident"})
    config = await js.key_value(specs.CONFIG.bucket)
    for key, body in CONFIG_SEED.items():
        await config.put(key, body)


async def renew_leases(js: JetStreamContext) -> None:
    """Every singleton's lease held by the victim (the bucket's TTL would lapse them)."""
    leases = await js.key_value(specs.LEASES.bucket)
    for svc in topology.SERVICES:
        if svc.singleton:
            await leases.put(svc.name, VICTIM.encode())


async def snapshot(js: JetStreamContext) -> dict[str, Any]:
    """Everything an attack could change: each stream's config, messages and consumer count
    (for KV streams, each key's current value instead of message counts)."""
    state: dict[str, Any] = {}
    for info in await js.streams_info():
        name = info.config.name
        assert name is not None
        entry: dict[str, Any] = {
            "config": info.config.as_dict(),
            "consumers": info.state.consumer_count,
        }
        if name.startswith("KV_"):
            keys = await js.stream_info(name, subjects_filter=">")
            values = {}
            for subject in sorted(keys.state.subjects or {}):
                msg = await js.get_last_msg(name, subject)
                values[subject] = (msg.data, dict(msg.headers or {}))
            entry["values"] = values
        else:
            entry["messages"] = info.state.messages
            entry["last_seq"] = info.state.last_seq
        state[name] = entry
    return state


@dataclass
class Attacker:
    """A client connected as one service's NATS user; says whether each attempt was refused."""

    svc: topology.ServiceSpec
    nc: Client
    violations: list[str] = field(default_factory=list)
    _violated: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream(timeout=2)

    async def on_error(self, err: Exception) -> None:
        if "permissions violation" in str(err).lower():
            self.violations.append(str(err))
            self._violated.set()

    async def attempt(self, op: Awaitable[Any]) -> str:
        """``refused`` (permissions violation or an API error) or ``done``."""
        self._violated.clear()
        task = asyncio.ensure_future(op)
        flag = asyncio.ensure_future(self._violated.wait())
        try:
            await asyncio.wait({task, flag}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        finally:
            flag.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return "refused"
        try:
            task.result()
        except (JetStreamError, nats.errors.Error, TimeoutError):
            return "refused"
        return "done"

    async def refused(self, op: Awaitable[Any], what: str) -> None:
        outcome = await self.attempt(op)
        assert outcome == "refused", f"{self.svc.name} could {what}"


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    paths = StatePaths(Path(tmp_path_factory.mktemp("secured")) / "state")
    paths.make()
    creds = load_credentials(paths)
    namespaces.create(paths, CLIENT_NS, durables=(CLIENT_DURABLE,))
    server = stack_server(paths, creds, "127.0.0.1", free_port())
    server.start()
    stack = SecuredStack(paths, server, creds)

    async def provision_and_seed() -> None:
        nc = await stack.admin()
        try:
            await provision_stack(nc.jetstream())
            await seed(nc.jetstream())
        finally:
            await nc.close()

    try:
        asyncio.run(provision_and_seed())
        yield stack
    finally:
        server.stop()


@pytest.fixture
async def admin_js(secured_stack: SecuredStack) -> AsyncIterator[JetStreamContext]:
    nc = await secured_stack.admin()
    try:
        js = nc.jetstream()
        await renew_leases(js)
        yield js
    finally:
        await nc.close()


async def connect_as(stack: SecuredStack, svc: topology.ServiceSpec) -> Attacker:
    attacker = Attacker(svc, nc=None)  # type: ignore[arg-type]
    attacker.nc = await nats.connect(
        stack.url,
        user=f"hms-{svc.name}",
        password=stack.creds[svc.name],
        inbox_prefix=subjects.inbox_prefix(svc.name),
        error_cb=attacker.on_error,
        max_reconnect_attempts=0,
        connect_timeout=2,
    )
    return attacker


@pytest.fixture(params=topology.SERVICES, ids=topology.SERVICE_NAMES)
async def attacker(
    request: pytest.FixtureRequest, secured_stack: SecuredStack
) -> AsyncIterator[Attacker]:
    attacker = await connect_as(secured_stack, request.param)
    try:
        yield attacker
    finally:
        await attacker.nc.close()
