"""What a service shows the world: traces across NATS, Prometheus metrics, refused operations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import nats
from faststream.nats import NatsRouter
from hms_contracts import specs, topology
from hms_kit import (
    BatchConsumer,
    Delivery,
    Service,
    ServiceSettings,
    provision,
    provision_shared,
    publish,
)
from hms_testing import NatsHandle, metric_value, open_nats, running, wait_until
from hms_testing.probe import PROBE_RUNS, ProbeItem
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr


def with_exporter(service: Service) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    service.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def scrape(service: Service) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(service.health.url + "/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


async def test_trace_context_travels_in_nats_headers(nats_server: NatsHandle) -> None:
    subject = "ops.audit.acme.traced"
    received: list[dict[str, str]] = []
    router = NatsRouter()

    @router.subscriber(subject)
    async def on_traced(body: dict[str, str]) -> None:
        received.append(body)

    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=60)
    producer = Service("metrics-collector", settings, version="t")
    consumer = Service("console", settings, version="t", routers=(router,))
    sent, got = with_exporter(producer), with_exporter(consumer)
    async with running(producer), running(consumer):
        await producer.broker.publish({"hello": "world"}, subject)
        await wait_until(lambda: received, timeout=5, message="the traced message")

        def consumer_span_done() -> bool:
            return any(s.kind is SpanKind.CONSUMER for s in got.get_finished_spans())

        await wait_until(consumer_span_done, timeout=5, message="the consumer span")
    producer_spans = [s for s in sent.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    (process_span,) = [s for s in got.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert producer_spans
    assert process_span.context is not None
    assert process_span.parent is not None
    assert {s.context.trace_id for s in producer_spans if s.context} == {
        process_span.context.trace_id
    }
    # its parent is the producer's span: the context came across in the NATS headers
    assert process_span.parent.span_id in {s.context.span_id for s in producer_spans if s.context}
    assert process_span.resource.attributes["service.name"] == "hms-console"
    assert producer_spans[0].resource.attributes["service.name"] == "hms-metrics-collector"


async def test_metrics_endpoint_is_prometheus_text_with_heartbeats(
    nats_server: NatsHandle,
) -> None:
    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=0.1)
    service = Service("console", settings, version="t")
    async with running(service):

        async def beats() -> float:
            return metric_value(await scrape(service), "hms_heartbeats_total") >= 2

        await wait_until(beats, timeout=5, message="two heartbeats on /metrics")
        families = {f.name: f for f in text_string_to_metric_families(await scrape(service))}
    assert families["hms_heartbeats"].type == "counter"
    assert families["hms_nats_connected"].samples[0].value == 1
    (info,) = families["hms_service_info"].samples
    assert info.labels["service"] == "console"
    assert info.labels["instance"] == service.instance_id


async def test_permission_violations_are_counted(tmp_path: Path) -> None:
    console = topology.service("console")
    users = {
        "admin": {"password": "admin-pw"},
        "console": {"password": "pw", "permissions": topology.nats_permissions(console)},
    }
    server = open_nats(tmp_path / "nats", users=users)
    try:
        admin = await nats.connect(server.url, user="admin", password="admin-pw")
        await provision_shared(admin.jetstream())  # the admin's part; the console only waits
        await admin.close()
        settings = ServiceSettings(
            nats_url=server.url,
            nats_user="console",
            nats_password=SecretStr("pw"),
            heartbeat_interval_s=60,
        )
        service = Service("console", settings, version="t")
        async with running(service):
            assert metric_value(await scrape(service), "hms_nats_permission_violations_total") == 0
            await service.nc.publish("ops.scale.acme.forbidden", b"{}")  # the autoscaler only
            await service.nc.flush()

            async def counted() -> bool:
                text = await scrape(service)
                return metric_value(text, "hms_nats_permission_violations_total") >= 1

            await wait_until(counted, timeout=5, message="the violation on /metrics")
    finally:
        server.stop()


async def test_batch_consumer_spans_link_to_the_publishers_trace_context_from_nats_headers(
    nats_server: NatsHandle, js: JetStreamContext
) -> None:
    await provision(js, streams=(specs.JOB_RUNS,), consumers=(PROBE_RUNS,))
    producer = TracerProvider()
    sent = InMemorySpanExporter()
    producer.add_span_processor(SimpleSpanProcessor(sent))
    for i in range(3):
        with producer.get_tracer("test").start_as_current_span("enqueue", kind=SpanKind.PRODUCER):
            item = ProbeItem(
                event_id=f"t-{i}", occurred_at=datetime.now(UTC), namespace="acme", item=i
            )
            await publish(js, item)
    handled: list[int] = []

    async def consume(service: Service) -> None:
        async def handle(batch: Sequence[Delivery[ProbeItem]]) -> None:
            handled.extend(d.event.item for d in batch)

        await BatchConsumer.for_service(service, PROBE_RUNS, ProbeItem, handle).run()

    settings = ServiceSettings(nats_url=nats_server.url, heartbeat_interval_s=60)
    service = Service("worker-pool", settings, version="t", loops=(consume,), consumers=())
    got = with_exporter(service)
    async with running(service):
        await wait_until(lambda: len(handled) == 3, timeout=5, message="3 items handled")

        def consumer_spans() -> list[ReadableSpan]:
            return [s for s in got.get_finished_spans() if s.kind is SpanKind.CONSUMER]

        await wait_until(consumer_spans, timeout=5, message="the batch consumer's spans")
    spans = consumer_spans()
    assert {s.name for s in spans} == {f"{PROBE_RUNS.durable} process"}
    assert all(s.resource.attributes["service.name"] == "hms-worker-pool" for s in spans)
    published = {
        (s.context.trace_id, s.context.span_id) for s in sent.get_finished_spans() if s.context
    }
    linked = {(link.context.trace_id, link.context.span_id) for s in spans for link in s.links}
    assert linked == published, "each batch links to the trace context its messages carried"
