"""OpenTelemetry: a tracer provider per service, OTLP/HTTP export when configured."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def tracer_provider(
    service: str, version: str, instance_id: str, otlp_endpoint: str | None
) -> TracerProvider:
    """A provider whose spans name the service; exported over OTLP/HTTP when an endpoint is set."""
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": f"hms-{service}",
                "service.version": version,
                "service.instance.id": instance_id,
            }
        )
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider
