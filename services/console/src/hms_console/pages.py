"""The dashboard: server-rendered HTML, SVG drawn here, live updates by server-sent events.

No external asset: the stylesheet and the small script are served from ``/static``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from hms_contracts.tokens import check_namespace

from . import views
from .core import svg
from .core.plain import pct
from .core.policy import Principal, may
from .errors import ConsoleError
from .web import CSRF_FIELD, console_of, csrf_of

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

ACTIONS = {"ack": "incident_ack", "resolve": "incident_resolve", "approve": "incident_approve"}
LIVE_KEEPALIVE_S = 15.0


def _principal(request: Request) -> Principal | None:
    found = request.state.principal
    return found if isinstance(found, Principal) else None


def _page(request: Request, name: str, status: int = 200, **data: Any) -> HTMLResponse:
    principal = _principal(request)
    context = {
        "principal": principal,
        "csrf": csrf_of(request),
        "csrf_field": CSRF_FIELD,
        **data,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(request: Request, status: int, message: str) -> Response:
    if not hasattr(request.state, "principal"):
        request.state.principal = None
    return _page(request, "error.html", status=status, code=status, message=message)


def _namespace(namespace: str) -> str:
    try:
        return check_namespace(namespace)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    target = "/dashboard" if _principal(request) else "/login"
    return RedirectResponse(target, status_code=303)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


@router.get("/login", include_in_schema=False)
async def login_form(request: Request, next: str | None = None) -> Response:
    return _page(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    given, token = form.get(CSRF_FIELD), form.get("token")
    target = _safe_next(str(form.get("next") or ""))
    expected = request.session.get("csrf")
    if not (isinstance(given, str) and isinstance(expected, str)) or not hmac.compare_digest(
        given, expected
    ):
        return _page(
            request, "login.html", status=400, next=target, error="The form expired: try again."
        )
    principal = None
    if isinstance(token, str) and token:
        principal = await console_of(request).tokens.authenticate(token)
    if principal is None:
        return _page(
            request, "login.html", status=401, next=target, error="That token is not valid."
        )
    request.session.clear()  # a new session: no fixation
    request.session["token_id"] = principal.token_id
    request.state.principal = principal
    csrf_of(request)
    return RedirectResponse(target, status_code=303)


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/dashboard", include_in_schema=False)
async def index(request: Request) -> Response:
    console, principal = console_of(request), _principal(request)
    assert principal is not None
    names = [n for n in console.known_namespaces() if principal.covers(n)]
    if principal.namespace != "*" and principal.namespace not in names:
        names.append(principal.namespace)
    rows = []
    for name in sorted(names):
        open_incidents = views.incidents(console, name, open_only=True)
        rows.append(
            {"name": name, "open": len(open_incidents), "slos": views.compliance(console, name)}
        )
    return _page(request, "index.html", namespaces=rows)


@router.get("/dashboard/{namespace}", include_in_schema=False)
async def dashboard(request: Request, namespace: str) -> Response:
    console, principal = console_of(request), _principal(request)
    ns = _namespace(namespace)
    graphs = [views.graph(console, ns, m) for m in views.metric_names(console, ns)[:8]]
    rate, rate_source = views.error_rate(console, ns)
    view = console.projection.ns(ns)
    return _page(
        request,
        "dashboard.html",
        namespace=ns,
        graphs=graphs,
        gauge=svg.gauge(rate, f"error rate ({rate_source})"),
        error_rate="no data" if rate is None else pct(rate),
        error_source=rate_source,
        slos=views.compliance(console, ns),
        incidents=views.incidents(console, ns)[:50],
        jobs=views.jobs(console, ns),
        queues=await views.queues(console, ns),
        alerts=list(view.alerts)[:20],
        breaches=list(view.breaches)[:20],
        can_respond=may(principal, "respond", ns),
        flash=request.query_params.get("msg"),
        month=datetime.now(UTC).strftime("%Y-%m"),
    )


@router.get("/dashboard/{namespace}/incidents/{incident_id}", include_in_schema=False)
async def incident_page(request: Request, namespace: str, incident_id: str) -> Response:
    console = console_of(request)
    ns = _namespace(namespace)
    found = console.projection.ns(ns).incidents.get(incident_id)
    if found is None:
        raise HTTPException(404, f"no incident {incident_id!r} in namespace {ns}")
    return _page(
        request,
        "incident.html",
        namespace=ns,
        incident=found,
        can_respond=may(_principal(request), "respond", ns),
        flash=request.query_params.get("msg"),
    )


@router.post("/dashboard/{namespace}/incidents/{incident_id}/{action}", include_in_schema=False)
async def incident_action(
    request: Request, namespace: str, incident_id: str, action: str
) -> Response:
    console, principal = console_of(request), _principal(request)
    ns = _namespace(namespace)
    command = ACTIONS.get(action)
    if command is None or principal is None:
        raise HTTPException(404, f"no action {action!r}; expected ack, resolve or approve")
    form = await request.form()
    note = form.get("note")
    args = {"note": note} if isinstance(note, str) and note else {}
    try:
        reply = await console.command(principal, ns, command, incident_id, args)
        message = reply.detail
    except ConsoleError as exc:
        message = str(exc)
    back = f"/dashboard/{ns}/incidents/{incident_id}"
    from urllib.parse import quote

    return RedirectResponse(f"{back}?msg={quote(message[:300])}", status_code=303)


@router.get("/dashboard/{namespace}/graph.svg", include_in_schema=False)
async def graph_svg(request: Request, namespace: str, metric: str = Query(...)) -> Response:
    drawing = views.graph(console_of(request), _namespace(namespace), metric).svg
    return Response(drawing, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/dashboard/{namespace}/live", include_in_schema=False)
async def live(request: Request, namespace: str) -> Response:
    """Server-sent events: each change of the namespace as it lands."""
    console = console_of(request)
    ns = _namespace(namespace)
    queue = console.projection.listen(ns)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), LIVE_KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()
        finally:
            console.projection.unlisten(ns, queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/badge/{namespace}/{slo}.svg", include_in_schema=False)
async def badge(request: Request, namespace: str, slo: str) -> Response:
    """An embeddable badge for agency web pages: public, like a status page."""
    console = console_of(request)
    ns = _namespace(namespace)
    found = next((c for c in views.compliance(console, ns) if c.name == slo), None)
    if found is None:
        drawing = svg.badge(slo, "unknown", "grey")
        status = 404
    else:
        drawing = svg.badge(
            f"{slo} {pct(found.target)}", f"{found.short()} · {found.verdict}", found.colour
        )
        status = 200
    headers = {"Cache-Control": "max-age=30", "X-Content-Type-Options": "nosniff"}
    with contextlib.suppress(Exception):
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return Response(drawing, status_code=status, media_type="image/svg+xml", headers=headers)
