"""The console's ASGI app: FastAPI, every route guarded by the one allow/deny table.

A caller is a bearer token (``Authorization: Bearer hms_...``) or a browser session made by
logging in with a token (a signed, HttpOnly, SameSite=Strict cookie holding the token's id,
re-checked on every request so a revoked token ends its sessions). A state-changing request
on a session must carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``); bearer calls carry no ambient authority and need none.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount

from . import __version__
from .context import Console
from .core.policy import Principal, allowed, need_of
from .errors import ConsoleError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "hms_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def console_of(request: Request) -> Console:
    console = request.app.state.console
    assert isinstance(console, Console)
    return console


def csrf_of(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def principal_of(request: Request) -> tuple[Principal | None, bool]:
    """Who calls, and whether through a browser session (then CSRF applies)."""
    console = console_of(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, False
        return await console.tokens.authenticate(token), False
    token_id = request.session.get("token_id")
    if not isinstance(token_id, str):
        return None, True
    record = await console.tokens.record(token_id)
    if record is None or not record.live(datetime.now(UTC)):
        request.session.pop("token_id", None)
        return None, True
    return record.principal(), True


async def _csrf_ok(request: Request) -> bool:
    expected = request.session.get("csrf")
    if not isinstance(expected, str):
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given, expected)


async def guard(request: Request) -> Principal | None:
    """Every route's gate: the table says what it needs; deny by default."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    need = need_of(request.method, template) if isinstance(template, str) else None
    principal, by_session = await principal_of(request)
    request.state.principal = principal
    namespace = request.path_params.get("namespace")
    if need is None:
        raise HTTPException(403, f"{request.method} {template} is in no role's table: refused")
    if need == "public":
        # the login form checks its own CSRF token: before it there is no session to match
        checked = by_session and request.method in _UNSAFE and request.url.path != "/login"
        if checked and not await _csrf_ok(request):
            raise HTTPException(403, "missing or wrong CSRF token")
        return principal
    if principal is None:
        raise HTTPException(401, "a valid token is needed (Authorization: Bearer, or log in)")
    on_call = False
    if need == "override" and isinstance(namespace, str) and principal.covers(namespace):
        console = console_of(request)
        on_call = await console.on_call.is_on_call(principal, namespace, datetime.now(UTC))
    if not allowed(principal, need, namespace, on_call=on_call):
        what = "a manual override (on call now, or admin)" if need == "override" else need
        where = f" in namespace {namespace}" if namespace else ""
        raise HTTPException(
            403, f"{principal.role} {principal.name!r} may not do this: it needs {what}{where}"
        )
    if by_session and request.method in _UNSAFE and not await _csrf_ok(request):
        raise HTTPException(403, "missing or wrong CSRF token (reload the page and try again)")
    return principal


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        "/api/"
    )


def create_app(console: Console) -> FastAPI:
    """The console's ASGI app over ``console``'s resources."""
    from . import api, ingest, pages

    app = FastAPI(
        title="hms-ops console",
        version=__version__,
        description="Per-namespace API over the services' events: who may see and do what.",
        dependencies=[Depends(guard)],
        docs_url=None,  # Swagger UI loads from a CDN; the console works offline
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.console = console
    secret = console.settings.session_secret
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret.get_secret_value() if secret else secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=console.settings.session_max_age_s,
        same_site="strict",
        https_only=console.settings.secure_cookies,
    )
    # the API first: its routes are the hot ones, and routes are matched in order
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(ingest.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if _wants_html(request):
            return pages.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    return app


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves (the role x route test walks these).
    Routers are included without a prefix, so their routes' paths are whole."""
    found: list[tuple[str, str]] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop(0)
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
            continue
        if isinstance(route, Mount):
            found.append(("GET", route.path + "/{path:path}"))
            continue
        methods: Any = getattr(route, "methods", None) or {"GET"}
        path = getattr(route, "path", "")
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found
