"""A new leader whose SQLite lacks the audit records (another instance led before it, or its file
is new) takes them from the bus first, so each namespace's chain goes on instead of restarting."""

from __future__ import annotations

from pathlib import Path

from hms_contracts import AuditRecorded, specs
from hms_testing import NatsHandle, wait_until
from hms_testing.incidents import engine_of, firing, leading, request, send, stream_events
from nats.aio.client import Client
from nats.js import JetStreamContext


async def test_a_new_leader_with_an_empty_file_continues_each_chain_from_the_bus(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path / "first", []) as first:
        await send(js, firing())
        store = engine_of(first).store
        await wait_until(lambda: store.one("SELECT 1 FROM audit"), message="a record")
    async with leading(nats_server, tmp_path / "second", []) as second:
        await send(js, firing("b1b2c3d4e5f60718"))
        store = engine_of(second).store
        await wait_until(
            lambda: store.one("SELECT 1 FROM audit WHERE sequence = 2"),
            message="the second instance's record",
        )
        verified = await request(nc, "audit_verify", {})
    published = [e for _, e in await stream_events(js, specs.AUDIT.name)]
    sequences = [r.sequence for r in published if isinstance(r, AuditRecorded)]
    assert sequences == list(range(1, len(sequences) + 1)), "one chain, no sequence twice"
    assert len(sequences) >= 2
    assert verified == {"checked": len(sequences), "broken": None}
