"""``/healthz`` tells the truth: a service that cannot write to JetStream says so, with the
reason, and recovers by itself once it can again."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from hms_kit import Service, ServiceSettings, provision_shared
from hms_stack.natsserver import NatsServer
from hms_testing import running, wait_until
from hms_testing.stacks import fill, tmpfs


async def healthz(service: Service) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(service.health.url + "/healthz") as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.slow
async def test_a_full_disk_makes_the_service_degraded_with_the_reason_until_it_recovers(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "size=48m,mode=0700") as disk:
        server = NatsServer(store_dir=disk / "nats", name="hms-health-test")
        server.start()
        try:
            admin = await nats.connect(server.url)
            await provision_shared(admin.jetstream())
            settings = ServiceSettings(nats_url=server.url, heartbeat_interval_s=0.2)
            async with running(Service("console", settings, version="t")) as service:

                async def ok() -> bool:
                    return (await healthz(service))[0] == 200

                await wait_until(ok, 5, message="/healthz to say ok")

                filler = await asyncio.to_thread(fill, disk)
                js = admin.jetstream(timeout=2)
                with contextlib.suppress(Exception):  # JetStream notices on its next write
                    await js.publish("$KV.hms_services.console.filler", b"x" * 500_000)

                async def degraded() -> dict[str, Any] | None:
                    status, body = await healthz(service)
                    return body if status == 503 and body["status"] == "degraded" else None

                body = await wait_until(degraded, 15, message="/healthz to say degraded")
                assert "cannot write to JetStream" in body["degraded"]["jetstream"]
                assert service.heartbeat().health == "degraded"

                filler.unlink()  # the disk has room again; a restart unwedges the stream
                await asyncio.to_thread(server.restart)
                await wait_until(ok, 20, message="/healthz to say ok again")
            await admin.close()
        finally:
            server.stop()
