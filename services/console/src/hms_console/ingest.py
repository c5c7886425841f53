"""HTTP ingest for agency systems that cannot speak NATS: metric batches and the agency's own
events, validated by the same contracts and published on the same subjects as the SDK's."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from hms_contracts import AgencyEvent, MetricSampleBatch
from pydantic import ValidationError

from . import remotewrite
from .api import _ns, me
from .web import console_of

router = APIRouter(prefix="/api/v1")


def _problems(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in exc.errors()
    )


async def _raw(request: Request) -> bytes:
    """The body, refused with 413 over the limit and 429 when the caller is too quick."""
    console = console_of(request)
    wait = console.ingest_limit.take(me(request).token_id, time.monotonic())
    if wait > 0:
        raise HTTPException(
            429,
            f"too many requests from this token: at most {console.settings.ingest_rate_per_s:g}"
            f"/s; retry in {wait:.1f}s",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    limit = console.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is over the limit of {limit}")
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request) -> Any:
    """The JSON body (see :func:`_raw`)."""
    try:
        return json.loads(await _raw(request))
    except ValueError as exc:
        raise HTTPException(400, f"body: not JSON ({exc})") from None


@router.post(
    "/namespaces/{namespace}/metrics",
    status_code=202,
    summary="A batch of samples: JSON {source, samples: [{name, value, unit, labels, "
    "observed_at}]}, or a Prometheus remote-write body (snappy protobuf)",
)
async def post_metrics(request: Request, namespace: str) -> Any:
    ns = _ns(namespace)
    if request.headers.get("content-type", "").startswith(remotewrite.CONTENT_TYPE):
        return await _remote_write(request, ns)
    body = await _body(request)
    if not isinstance(body, dict):
        raise HTTPException(422, "body: expected an object with source and samples")
    unknown = sorted(set(body) - {"source", "samples"})
    if unknown:
        raise HTTPException(422, f"{unknown[0]}: unknown field (expected source, samples)")
    try:
        batch = MetricSampleBatch.create(
            namespace=ns,
            occurred_at=datetime.now(UTC),
            source=body.get("source", "http"),
            origin="push",
            samples=body.get("samples"),
        )
    except ValidationError as exc:
        raise HTTPException(422, _problems(exc)) from None
    await console_of(request).js.publish(
        batch.subject(), batch.model_dump_json().encode(), headers={"Nats-Msg-Id": batch.event_id}
    )
    return {"accepted": len(batch.samples), "event_id": batch.event_id, "subject": batch.subject()}


async def _remote_write(request: Request, ns: str) -> Response:
    """Prometheus ``remote_write`` (1.0): the samples go out as batches from source
    ``remote_write``, like any push; 204 as Prometheus expects, 400 for a body it must not
    retry."""
    try:
        samples = remotewrite.decode(await _raw(request))
    except remotewrite.RemoteWriteError as exc:
        raise HTTPException(400, str(exc)) from None
    js = console_of(request).js
    sends = []
    for start in range(0, len(samples), 10_000):
        try:
            batch = MetricSampleBatch.create(
                namespace=ns,
                occurred_at=datetime.now(UTC),
                source="remote_write",
                origin="push",
                samples=samples[start : start + 10_000],
            )
        except ValidationError as exc:
            raise HTTPException(400, _problems(exc)) from None
        sends.append(
            js.publish(
                batch.subject(),
                batch.model_dump_json().encode(),
                headers={"Nats-Msg-Id": batch.event_id},
            )
        )
    await asyncio.gather(*sends)
    return Response(status_code=204)


@router.post(
    "/namespaces/{namespace}/events",
    status_code=202,
    summary="The agency's own events: one {name, key, payload} or a list of them",
)
async def post_events(request: Request, namespace: str) -> dict[str, Any]:
    ns = _ns(namespace)
    body = await _body(request)
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > 1000:
        raise HTTPException(422, "body: give 1 to 1000 events")
    events = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise HTTPException(422, f"[{i}]: expected an object with name, key and payload")
        try:
            events.append(AgencyEvent.create(namespace=ns, occurred_at=datetime.now(UTC), **item))
        except ValidationError as exc:
            where = f"[{i}]." if isinstance(body, list) else ""
            raise HTTPException(422, _problems(exc, where)) from None
        except TypeError as exc:
            raise HTTPException(422, f"[{i}]: {exc}") from None
    js = console_of(request).js
    for event in events:
        await js.publish(
            event.subject(),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": event.event_id},
        )
    return {"accepted": len(events), "event_ids": [e.event_id for e in events]}
