"""The JSON API, per namespace: reads over the projection, commands as bus requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from hms_contracts import AuditRecorded, specs
from hms_contracts import subjects as s
from hms_contracts.audit import GENESIS_HASH
from hms_contracts.config import KINDS, Alert, Job, Silence, Slo, parse_object
from hms_contracts.config.base import ConfigError
from hms_contracts.tokens import check_namespace
from hms_ops.errors import ConflictError, InvalidObject
from pydantic import ValidationError

from . import overrides, views
from .core.policy import Principal
from .core.report import build, month_bounds
from .errors import ConsoleError
from .reportout import to_csv, to_pdf
from .streams import browse, namespace_events
from .web import console_of

router = APIRouter(prefix="/api/v1")


def me(request: Request) -> Principal:
    principal = request.state.principal
    assert isinstance(principal, Principal)
    return principal


def _ns(namespace: str) -> str:
    try:
        return check_namespace(namespace)
    except ValueError as exc:
        raise HTTPException(404, f"namespace: {exc}") from None


@router.get("/whoami", summary="The caller's token: name, role, namespace")
async def whoami(request: Request) -> dict[str, Any]:
    p = me(request)
    return {"name": p.name, "role": p.role, "namespace": p.namespace}


@router.get("/namespaces/{namespace}/services", summary="Services from their heartbeats")
async def services(request: Request, namespace: str) -> list[dict[str, Any]]:
    _ns(namespace)
    return views.services(console_of(request))


@router.get("/namespaces/{namespace}/config", summary="Config objects of the namespace")
async def config_objects(
    request: Request, namespace: str, kind: str | None = None
) -> list[dict[str, Any]]:
    console = console_of(request)
    kinds = [kind] if kind else ["metric", "alert", "job", "playbook"]
    rows: list[dict[str, Any]] = []
    for k in kinds:
        for obj in console.config.objects(k, _ns(namespace)):
            rows.append({"kind": k, **obj.model_dump(mode="json")})
    return rows


@router.get("/namespaces/{namespace}/config/{kind}/{name}", summary="One config object")
async def config_object(request: Request, namespace: str, kind: str, name: str) -> dict[str, Any]:
    console = console_of(request)
    found = await console.store(me(request).actor).get(_ns(namespace), kind, name)
    if found is None:
        raise HTTPException(404, f"no {kind} {name!r} in namespace {namespace}")
    return {
        "kind": kind,
        "object": found.object.model_dump(mode="json"),
        "generation": found.entry.generation,
        "author": found.entry.author,
        "revision": found.revision,
    }


@router.put("/namespaces/{namespace}/config/{kind}/{name}", summary="Create or update (authors)")
async def put_config(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    document: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's way
) -> dict[str, Any]:
    console, principal = console_of(request), me(request)
    if kind not in KINDS:
        raise HTTPException(422, f"kind: {kind!r} is not a config kind ({', '.join(KINDS)})")
    body = {**document, "kind": kind}
    if body.setdefault("name", name) != name:
        raise HTTPException(422, f"name: the body says {body['name']!r}, the path {name!r}")
    try:
        obj = parse_object(body, namespace=_ns(namespace))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, problems) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        changes = await console.store(principal.actor).apply([obj])
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidObject as exc:
        raise HTTPException(422, str(exc)) from None
    change = changes[0]
    await console.audit.record(
        namespace, principal.actor, "config.applied", change.key, {"action": change.action}
    )
    return {"key": change.key, "action": change.action, "generation": change.generation}


@router.delete("/namespaces/{namespace}/config/{kind}/{name}", summary="Delete (authors)")
async def delete_config(request: Request, namespace: str, kind: str, name: str) -> dict[str, Any]:
    console, principal = console_of(request), me(request)
    try:
        change = await console.store(principal.actor).delete(_ns(namespace), kind, name)
    except InvalidObject as exc:
        raise HTTPException(404, str(exc)) from None
    await console.audit.record(
        namespace, principal.actor, "config.deleted", change.key, {"action": change.action}
    )
    return {"key": change.key, "action": change.action}


@router.get("/namespaces/{namespace}/jobs", summary="Jobs: next run, last run, SLA state")
async def jobs(request: Request, namespace: str) -> list[dict[str, Any]]:
    return views.jobs(console_of(request), _ns(namespace))


@router.get("/namespaces/{namespace}/runs", summary="Recent runs and their state")
async def runs(request: Request, namespace: str, job: str | None = None) -> list[dict[str, Any]]:
    rows = list(console_of(request).projection.ns(_ns(namespace)).runs.values())
    rows = [r for r in rows if job is None or r["job_id"] == job]
    return sorted(rows, key=lambda r: r["at"], reverse=True)[:500]


@router.get("/namespaces/{namespace}/queues", summary="Queues: depth, workers, scaling")
async def queues(request: Request, namespace: str) -> list[dict[str, Any]]:
    return await views.queues(console_of(request), _ns(namespace))


@router.get("/namespaces/{namespace}/scaling", summary="Latest scaling decision per pool")
async def scaling(request: Request, namespace: str) -> list[dict[str, Any]]:
    return list(console_of(request).projection.ns(_ns(namespace)).scaling.values())


@router.get("/namespaces/{namespace}/metrics", summary="Metrics with their latest value")
async def metrics(request: Request, namespace: str) -> list[dict[str, Any]]:
    console = console_of(request)
    window = console.projection.ns(_ns(namespace)).metrics
    return [
        {"name": n, "unit": window.unit_of(n), "latest": window.latest(n)}
        for n in views.metric_names(console, namespace)
    ]


@router.get(
    "/namespaces/{namespace}/metrics/{metric}",
    summary="A metric's points; ranges beyond the live window are asked of the collector",
)
async def metric_points(
    request: Request,
    namespace: str,
    metric: str,
    since_s: float = Query(default=900.0, gt=0, description="How far back, seconds"),
) -> Response:
    console = console_of(request)
    ns = _ns(namespace)
    if since_s > console.settings.metric_window_s:
        found = await overrides.query_metric(
            console.nc, ns, metric, since_s, console.settings.command_timeout_s
        )
        if found.error is not None:
            raise HTTPException(422, found.error)
        return JSONResponse(
            {
                "metric": metric,
                "source": "metrics-collector",
                "series": [
                    {
                        "labels": series.labels,
                        "points": [[p.at.timestamp(), p.value] for p in series.points],
                    }
                    for series in found.series
                ],
            }
        )
    window = console.projection.ns(_ns(namespace)).metrics
    since = datetime.now(UTC).timestamp() - since_s
    points = window.points(metric, since=since)
    return JSONResponse(
        {
            "metric": metric,
            "unit": window.unit_of(metric),
            "source": "live window",
            "points": [[round(t, 3), v] for t, v in points[-5000:]],
        }
    )


@router.get("/namespaces/{namespace}/alerts", summary="Firing and recent alerts, breaches")
async def alerts(request: Request, namespace: str) -> dict[str, Any]:
    view = console_of(request).projection.ns(_ns(namespace))
    return {
        "firing": list(view.firing.values()),
        "recent": list(view.alerts)[:100],
        "breaches": list(view.breaches)[:100],
    }


@router.get(
    "/namespaces/{namespace}/slos",
    summary="SLOs as the evaluator reports them (alert objectives where none is registered)",
)
async def slos(request: Request, namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "metric": c.metric,
            "target": c.target,
            "compliance": c.ratio,
            "good": c.good,
            "total": c.total,
            "colour": c.colour,
            "breached": c.breached,
            "budget_left": c.budget_left,
            "source": c.source,
            "sentence": c.sentence(),
        }
        for c in views.compliance(console_of(request), _ns(namespace))
    ]


@router.get("/namespaces/{namespace}/incidents", summary="Incidents, newest first")
async def incidents(request: Request, namespace: str, open_only: bool = False) -> Response:
    # a hot path: the JSON is made once per change of the namespace's incidents
    view = console_of(request).projection.ns(_ns(namespace))
    body = view.open_incidents_body() if open_only else view.incidents_body()
    return Response(body, media_type="application/json")


@router.get("/namespaces/{namespace}/incidents/{incident_id}", summary="One incident's timeline")
async def incident(request: Request, namespace: str, incident_id: str) -> dict[str, Any]:
    view = console_of(request).projection.ns(_ns(namespace))
    found = view.incidents.get(incident_id)
    if found is None:
        raise HTTPException(404, f"no incident {incident_id!r} in namespace {namespace}")
    return found.detail()


async def _command(
    request: Request, namespace: str, command: str, target: str, args: dict[str, Any]
) -> dict[str, Any]:
    console = console_of(request)
    try:
        reply = await console.command(me(request), _ns(namespace), command, target, args)
    except ConsoleError:
        raise
    if not reply.ok:
        raise HTTPException(reply.status if reply.status >= 400 else 409, reply.detail)
    return reply.model_dump(mode="json")


async def _args(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            body = json.loads(await request.body() or b"{}")
            if isinstance(body, dict):
                return {k: v for k, v in body.items() if k != "csrf_token"}
        raise HTTPException(422, "body: expected a JSON object")
    return {}


@router.post("/namespaces/{namespace}/incidents/{incident_id}/ack", summary="Acknowledge")
async def ack(request: Request, namespace: str, incident_id: str) -> dict[str, Any]:
    return await _command(request, namespace, "incident_ack", incident_id, await _args(request))


@router.post("/namespaces/{namespace}/incidents/{incident_id}/resolve", summary="Resolve")
async def resolve(request: Request, namespace: str, incident_id: str) -> dict[str, Any]:
    args = await _args(request)
    return await _command(request, namespace, "incident_resolve", incident_id, args)


@router.post("/namespaces/{namespace}/incidents/{incident_id}/approve", summary="Approve a step")
async def approve(request: Request, namespace: str, incident_id: str) -> dict[str, Any]:
    args = await _args(request)
    return await _command(request, namespace, "incident_approve", incident_id, args)


@router.post("/namespaces/{namespace}/playbooks/{playbook}/run", summary="Run a playbook by hand")
async def run_playbook(request: Request, namespace: str, playbook: str) -> dict[str, Any]:
    return await _command(request, namespace, "playbook_run", playbook, await _args(request))


@router.get("/namespaces/{namespace}/silences", summary="Silences, active or not")
async def silences(request: Request, namespace: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for obj in console_of(request).config.objects("silence", _ns(namespace)):
        if isinstance(obj, Silence):
            rows.append({**obj.model_dump(mode="json"), "active": obj.active(now)})
    return rows


@router.post("/namespaces/{namespace}/silences", summary="Silence alerts (override)")
async def silence(request: Request, namespace: str) -> dict[str, Any]:
    """A ``silence`` config object the incident engine follows, written by the console on
    behalf of the person (its author), as ``hms-ops silences add`` does."""
    console, principal, ns = console_of(request), me(request), _ns(namespace)
    try:
        obj = overrides.new_silence(ns, principal.actor, await _args(request), datetime.now(UTC))
    except overrides.BadRequest as exc:
        raise HTTPException(422, str(exc)) from None
    [change] = await console.store(principal.actor).apply([obj])
    await console.audit.record(
        ns, principal.actor, "silence.created", change.key, {"until": obj.ends_at.isoformat()}
    )
    return {"key": change.key, "name": obj.name, "action": change.action,
            "ends_at": obj.ends_at.isoformat()}  # fmt: skip


@router.delete("/namespaces/{namespace}/silences/{silence_id}", summary="End a silence now")
async def unsilence(request: Request, namespace: str, silence_id: str) -> dict[str, Any]:
    """Expire it (a new version: its history stays), as ``hms-ops silences expire`` does."""
    console, principal, ns = console_of(request), me(request), _ns(namespace)
    store = console.store(principal.actor)
    try:
        found = await store.get(ns, "silence", silence_id)
    except (InvalidObject, ValueError):
        found = None
    if found is None or not isinstance(found.object, Silence):
        raise HTTPException(404, f"no silence {silence_id!r} in namespace {ns}")
    [change] = await store.apply([overrides.expired(found.object, datetime.now(UTC))])
    await console.audit.record(ns, principal.actor, "silence.expired", change.key, {})
    return {"key": change.key, "action": "expired"}


async def _pause(request: Request, namespace: str, queue: str, paused: bool) -> dict[str, Any]:
    console, principal, ns = console_of(request), me(request), _ns(namespace)
    try:
        row: dict[str, Any] = await overrides.pause(console.nc, ns, queue, paused, principal.actor)
    except overrides.BadRequest as exc:
        raise HTTPException(422, str(exc)) from None
    return row


@router.post("/namespaces/{namespace}/queues/{queue}/pause", summary="Pause a queue (override)")
async def pause_queue(request: Request, namespace: str, queue: str) -> dict[str, Any]:
    """The queue's key in ``hms_job_control``: workers hand out nothing from it (audited)."""
    return await _pause(request, namespace, queue, True)


@router.post("/namespaces/{namespace}/queues/{queue}/resume", summary="Resume a queue")
async def resume_queue(request: Request, namespace: str, queue: str) -> dict[str, Any]:
    return await _pause(request, namespace, queue, False)


async def _browse(
    request: Request, stream: str, subjects: list[str], limit: int
) -> list[tuple[int, str, bytes, dict[str, str]]]:
    return await browse(console_of(request).js, stream, subjects, limit)


@router.get("/namespaces/{namespace}/dead-letters", summary="Dead letters of the namespace")
async def dead_letters(
    request: Request, namespace: str, limit: int = Query(default=100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    ns = _ns(namespace)
    subjects = [f"{s.DLQ_PREFIX}.*.*.{ns}", f"{s.DLQ_PREFIX}.*.*.{ns}.>"]
    rows = []
    for seq, subject, data, headers in await _browse(request, specs.DLQ.name, subjects, limit):
        rows.append(
            {
                "sequence": seq,
                "subject": subject,
                "original_subject": subject.removeprefix(f"{s.DLQ_PREFIX}."),
                "headers": headers,
                "body": data.decode(errors="replace")[:4096],
            }
        )
    return rows


@router.post(
    "/namespaces/{namespace}/dead-letters/{sequence}/replay", summary="Replay a dead letter"
)
async def replay(request: Request, namespace: str, sequence: int) -> dict[str, Any]:
    """Back on its subject, removed from DLQ, audited: as ``hms-ops dlq replay`` does."""
    console, principal, ns = console_of(request), me(request), _ns(namespace)
    try:
        row: dict[str, Any] = await overrides.replay_dead_letter(
            console.nc, ns, sequence, principal.actor
        )
    except overrides.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except overrides.BadRequest as exc:
        raise HTTPException(422, str(exc)) from None
    return row


@router.get("/namespaces/{namespace}/audit/verify", summary="Check the audit chain's hashes")
async def verify_audit(request: Request, namespace: str) -> dict[str, Any]:
    ns = _ns(namespace)
    subject = s.AUDIT.subject(ns, "recorded")
    records = await _browse(request, specs.AUDIT.name, [subject], 1_000_000)
    previous = GENESIS_HASH
    for count, (seq, _, data, _) in enumerate(records, start=1):
        try:
            entry = AuditRecorded.model_validate_json(data)
        except ValidationError as exc:
            return {"ok": False, "records": count - 1, "broken_at": seq, "why": str(exc)[:300]}
        if entry.sequence != count or entry.prev_hash != previous:
            why = f"record {entry.sequence} does not follow record {count - 1}"
            return {"ok": False, "records": count - 1, "broken_at": seq, "why": why}
        previous = entry.hash
    return {"ok": True, "records": len(records), "last_hash": previous}


@router.get(
    "/namespaces/{namespace}/reports/compliance",
    summary="The month's compliance report: JSON summary, CSV or PDF",
)
async def compliance_report(
    request: Request,
    namespace: str,
    month: str = Query(description="YYYY-MM", pattern=r"^\d{4}-\d{2}$"),
    format: str = Query(default="json", pattern="^(json|csv|pdf)$"),
) -> Response:
    console = console_of(request)
    ns = _ns(namespace)
    try:
        start, _ = month_bounds(month)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    events = await namespace_events(console.js, ns, start)
    jobs = [o for o in console.config.objects("job", ns) if isinstance(o, Job)]
    alerts = [o for o in console.config.objects("alert", ns) if isinstance(o, Alert)]
    slos = [o for o in console.config.objects("slo", ns) if isinstance(o, Slo)]
    report = build(ns, month, events, jobs, alerts, console.settings.slo_target, slos)
    name = f"compliance-{ns}-{month}"
    if format == "csv":
        return Response(
            to_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "pdf":
        return Response(
            await asyncio.to_thread(to_pdf, report),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return JSONResponse(
        {
            "namespace": ns,
            "month": month,
            "summary": report.summary(),
            "objectives": [
                {"kind": o.kind, "name": o.name, "good": o.good, "total": o.total,
                 "compliance": o.compliance, "budget_spent": o.budget_spent,
                 "breaches": o.breaches, "verdict": o.verdict}
                for o in report.objectives
            ],
            "breaches": len(report.breaches),
            "incidents": len(report.incidents),
            "runs": len(report.runs),
        }
    )  # fmt: skip


@router.get("/namespaces/{namespace}/webhooks/deliveries", summary="Webhook delivery log")
async def deliveries(request: Request, namespace: str) -> list[dict[str, Any]]:
    return await console_of(request).deliveries.log(_ns(namespace))


__all__ = ["router"]
