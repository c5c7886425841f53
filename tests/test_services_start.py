"""Each of the seven services is a real process that starts on a server where the admin has
set up only the shared streams and buckets, with its own least-privilege NATS user, provisions
what it owns, heartbeats, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from hms_contracts import specs, topology
from hms_kit import provision_shared
from hms_ops.registry import read_registry
from hms_ops.state import StatePaths, admin_connect
from hms_stack.launch import ExecLauncher
from hms_stack.natsserver import free_port
from hms_stack.stack import UpOptions, service_children, stack_server
from hms_stack.state import load_credentials
from hms_stack.supervisor import Supervisor
from hms_testing.metrics import metric_value

pytestmark = pytest.mark.slow


async def test_every_service_provisions_what_it_owns_with_its_own_restricted_user(
    tmp_path: Path,
) -> None:
    paths = StatePaths(tmp_path / "state")
    paths.make()
    creds = load_credentials(paths)
    server = stack_server(paths, creds, "127.0.0.1", free_port())
    await asyncio.to_thread(server.start)
    admin = await admin_connect(server.url, creds["hms-admin"])
    await provision_shared(admin.jetstream())  # the admin's part; each service does its own
    await admin.close()
    opts = UpOptions(paths=paths, console_port=free_port(), heartbeat_interval_s=0.3)
    supervisor = Supervisor(
        service_children(opts, server.url, creds), launcher=ExecLauncher(), drain_timeout_s=10
    )
    try:
        await supervisor.start()
        healthy = await supervisor.wait_healthy(60)
        assert all(healthy.values()), healthy

        nc = await admin_connect(server.url, creds["hms-admin"])
        try:
            js = nc.jetstream()
            streams = {s.config.name for s in await js.streams_info()}
            for svc in topology.SERVICES:
                for stream in svc.owned_streams():
                    assert stream.name in streams, f"{svc.name} did not provision {stream.name}"
                for consumer in svc.owned_consumers():
                    info = await js.consumer_info(consumer.stream, consumer.durable)
                    assert info.config.durable_name == consumer.durable
            for bucket in specs.KV_BUCKETS:
                await js.key_value(bucket.bucket)

            async def registered() -> set[str]:
                return {b.service for b in await read_registry(js)}

            for _ in range(50):
                if await registered() == set(topology.SERVICE_NAMES):
                    break
                await asyncio.sleep(0.1)
            assert await registered() == set(topology.SERVICE_NAMES)
        finally:
            await nc.close()

        async with aiohttp.ClientSession() as http:
            for child in supervisor.children.values():
                async with http.get(child.http_url + "/metrics") as resp:
                    text = await resp.text()
                assert metric_value(text, "hms_nats_permission_violations_total") == 0, child.name
                assert metric_value(text, "hms_heartbeats_total") > 0, child.name
    finally:
        await supervisor.stop()
        await asyncio.to_thread(server.stop)
    codes = {
        c.name: c.last_exit if c.proc is None else c.proc.returncode
        for c in supervisor.children.values()
    }
    assert codes == dict.fromkeys(topology.SERVICE_NAMES, 0), "every service drains and exits 0"
