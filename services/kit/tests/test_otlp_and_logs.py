"""Spans leave over OTLP/HTTP when an endpoint is set; logs are JSON lines off a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys

import pytest
from aiohttp import web
from hms_kit.logs import configure_logging
from hms_kit.telemetry import tracer_provider
from hms_stack.natsserver import free_port


async def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_configured() -> None:
    received: list[tuple[str, bytes]] = []

    async def traces(request: web.Request) -> web.Response:
        received.append((request.content_type, await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        provider = tracer_provider(
            "scheduler", "9.9.9", "inst1", f"http://127.0.0.1:{port}/v1/traces"
        )
        with provider.get_tracer("test").start_as_current_span("enqueue run"):
            pass
        # the exporter posts from its own thread, synchronously: keep our loop free to answer
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        await asyncio.to_thread(provider.shutdown)
    finally:
        await runner.cleanup()
    assert received, "the collector received nothing"
    content_type, body = received[0]
    assert content_type == "application/x-protobuf"
    assert b"hms-scheduler" in body
    assert b"enqueue run" in body


def test_no_exporter_is_installed_without_an_endpoint() -> None:
    provider = tracer_provider("scheduler", "1", "inst", None)
    processors = provider._active_span_processor._span_processors
    assert processors == ()


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
