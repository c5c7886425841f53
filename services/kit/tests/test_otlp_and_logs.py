"""Spans leave over OTLP/HTTP when an endpoint is set; logs are JSON lines off a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from hms_kit.logs import configure_logging
from hms_kit.telemetry import tracer_provider
from hms_stack.natsserver import free_port
from opentelemetry.sdk.trace import TracerProvider


@dataclass
class Collector:
    """A real OTLP/HTTP endpoint on loopback that records what it receives."""

    url: str
    received: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    port = free_port()
    found = Collector(f"http://127.0.0.1:{port}/v1/traces")

    async def traces(request: web.Request) -> web.Response:
        found.received.append((request.content_type, await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


async def _one_span_flushed(provider: TracerProvider) -> None:
    with provider.get_tracer("test").start_as_current_span("enqueue run"):
        pass
    # the exporter posts from its own thread, synchronously: keep our loop free to answer
    assert await asyncio.to_thread(provider.force_flush, 10_000)
    await asyncio.to_thread(provider.shutdown)


async def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_configured(
    collector: Collector,
) -> None:
    await _one_span_flushed(tracer_provider("scheduler", "9.9.9", "inst1", collector.url))
    assert collector.received, "the collector received nothing"
    content_type, body = collector.received[0]
    assert content_type == "application/x-protobuf"
    assert b"hms-scheduler" in body
    assert b"enqueue run" in body


async def test_nothing_is_exported_without_an_endpoint_setting(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # even with OpenTelemetry's own variable pointing at a live collector: export is opt-in
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url)
    await _one_span_flushed(tracer_provider("scheduler", "9.9.9", "inst1", None))
    assert collector.received == []


@pytest.mark.parametrize(
    ("fmt", "json_expected"), [("json", True), ("text", False), ("auto", True)]
)
def test_logs_are_json_lines_unless_a_terminal_reads_them(
    monkeypatch: pytest.MonkeyPatch, fmt: str, json_expected: bool
) -> None:
    buffer = io.StringIO()  # not a TTY, as under a supervisor or in a container
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("evaluator", "abc123", fmt=fmt, level="INFO")
    try:
        logging.getLogger("hms_evaluator.core").info(
            "rule %s fired", "latency", extra={"rule": "r1"}
        )
    finally:
        logging.getLogger().handlers.clear()
    line = buffer.getvalue().strip().splitlines()[-1]
    if json_expected:
        record = json.loads(line)
        assert record["msg"] == "rule latency fired"
        assert record["service"] == "evaluator"
        assert record["instance"] == "abc123"
        assert record["level"] == "info"
        assert record["rule"] == "r1"
    else:
        assert "rule latency fired" in line
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
