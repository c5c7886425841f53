"""The acknowledge link's pages, on the service's HTTP server under ``/escalation/ack/<token>``.

GET shows a confirmation page with the incident's context and changes nothing, so a mail
scanner that pre-fetches links acknowledges nothing; only the POST of that page's form
acknowledges, once. A forged link is refused (403), an expired or used one too (410). Every
acknowledgement goes to the service's ``acknowledge`` callable with ``via="email_link"`` (it
audits it) and stops the escalation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from html import escape
from typing import Protocol

from aiohttp import web

from .engine import ACK_PATH, EscalationEngine
from .errors import LinkRefused
from .links import AckClaim

log = logging.getLogger(__name__)

VIA = "email_link"


class Acknowledge(Protocol):
    """The incident core's acknowledgement: records it (audited, with how it came)."""

    def __call__(
        self, namespace: str, incident_id: str, actor: str, via: str
    ) -> Awaitable[None]: ...


_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}"
        "th{text-align:left;padding-right:1em}button{font-size:1.2em;padding:.4em 1em}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html", headers=_HEADERS)


class AckPages:
    """GET: the confirmation page; POST: the acknowledgement."""

    def __init__(
        self, engine: EscalationEngine, acknowledge: Callable[[], Acknowledge | None]
    ) -> None:
        self.engine = engine
        self.acknowledge = acknowledge

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith(ACK_PATH):
            raise web.HTTPNotFound()
        token = request.path.removeprefix(ACK_PATH)
        if request.method == "GET":
            return await self.confirm(token)
        if request.method == "POST":
            form = await request.post()
            if form.get("confirm") != "acknowledge":
                return _page("Not acknowledged", "<p>Use the button on the link's page.</p>", 400)
            return await self.acknowledged(token)
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])

    async def _claim(self, token: str) -> AckClaim:
        claim = self.engine.signer().verify(token, self.engine.clock.now())
        used = await self.engine.store.link_used(claim.nonce)
        if used is None:  # signed by our key but never issued: treat as forged
            raise LinkRefused("this acknowledge link is not genuine", 403)
        if used:
            raise LinkRefused("this acknowledge link was already used", 410)
        found = await self.engine.store.escalation(claim.namespace, claim.incident_id)
        if found is not None and found.state == "closed":
            raise LinkRefused("this incident is closed already", 410)
        return claim

    async def confirm(self, token: str) -> web.Response:
        try:
            claim = await self._claim(token)
        except LinkRefused as exc:
            return _page("Link refused", f"<p>{escape(str(exc))}.</p>", exc.status)
        found = await self.engine.store.escalation(claim.namespace, claim.incident_id)
        rows = [("Incident", claim.incident_id), ("Namespace", claim.namespace)]
        if found is not None:
            inc = found.incident
            rows += [
                ("What", inc.title),
                ("Severity", inc.severity),
                ("Opened", inc.opened_at.isoformat()),
                ("State", found.state),
                *((f"Label {k}", v) for k, v in sorted(inc.labels.items())),
            ]
        rows.append(("You", claim.address))
        table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
        body = (
            f"<table>{table}</table>"
            "<p>Acknowledging tells everyone you are on it and stops the escalation.</p>"
            "<form method='post'><input type='hidden' name='confirm' value='acknowledge'>"
            "<button type='submit'>Acknowledge</button></form>"
        )
        return _page("Acknowledge this incident?", body)

    async def acknowledged(self, token: str) -> web.Response:
        try:
            claim = await self._claim(token)
        except LinkRefused as exc:
            return _page("Link refused", f"<p>{escape(str(exc))}.</p>", exc.status)
        now = self.engine.clock.now()
        if not await self.engine.store.consume_link(claim.nonce, now, VIA):
            return _page("Link refused", "<p>This acknowledge link was already used.</p>", 410)
        acknowledge = self.acknowledge()
        try:
            if acknowledge is None:
                raise RuntimeError("the service offers no acknowledge")
            await acknowledge(claim.namespace, claim.incident_id, claim.address, VIA)
        except Exception:
            log.exception("acknowledging %s/%s failed", claim.namespace, claim.incident_id)
            await self.engine.store.release_link(claim.nonce)
            return _page("Not acknowledged", "<p>Something failed; try again shortly.</p>", 503)
        await self.engine.acknowledged(claim.namespace, claim.incident_id, now)
        log.info(
            "incident %s/%s acknowledged by %s via %s",
            claim.namespace, claim.incident_id, claim.address, VIA,
        )  # fmt: skip
        body = f"<p>Thank you. Incident {escape(claim.incident_id)} is acknowledged.</p>"
        return _page("Acknowledged", body)
