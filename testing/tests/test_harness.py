"""The test harness itself: its server is ours, survives kill -9, and its failures explain."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hms_contracts import specs
from hms_kit import ensure_stream
from hms_stack.natsserver import read_server_info
from hms_testing import (
    ExternalNats,
    NatsHandle,
    ServiceLauncher,
    ServiceStartError,
    connect,
    wait_until,
)
from nats.js import JetStreamContext


def test_nats_server_is_the_one_this_test_started(nats_server: NatsHandle) -> None:
    if isinstance(nats_server, ExternalNats):
        pytest.skip("NATS_URL: the server was started by someone else")
    url = urlsplit(nats_server.url)
    info = read_server_info(url.hostname or "", url.port or 0)
    assert info["server_name"] == nats_server.name
    assert nats_server.name.startswith("hms-test-")
    assert info["jetstream"]


async def test_restarted_server_keeps_its_port_and_its_streams(
    nats_server: NatsHandle, js: JetStreamContext
) -> None:
    await ensure_stream(js, specs.DLQ)
    await js.publish("dlq.kept", b"before the kill")
    nats_server.kill()
    nats_server.restart()
    nc = await connect(nats_server.url)
    try:
        msg = await nc.jetstream().get_last_msg("DLQ", "dlq.kept")
        assert msg.data == b"before the kill"
    finally:
        await nc.close()


async def test_wait_until_returns_the_value_or_says_what_it_waited_for() -> None:
    calls: list[int] = []

    def third_time() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await wait_until(third_time, timeout=2, interval=0.01) == 3
    with pytest.raises(AssertionError, match=r"waiting for the moon: last value False"):
        await wait_until(lambda: False, timeout=0.1, interval=0.01, message="the moon")


async def test_a_service_that_cannot_start_fails_with_its_log_tail(
    start_service: ServiceLauncher, tmp_path: Path
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import sys\nprint('the probe cannot find its settings')\nsys.exit(3)\n")
    with pytest.raises(ServiceStartError, match=r"exited with 3(.|\n)*cannot find its settings"):
        await start_service(script, service="worker-pool", timeout=10)
