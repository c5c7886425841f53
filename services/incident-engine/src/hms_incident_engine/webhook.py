"""Prometheus Alertmanager's webhook (payload version 4) on the service's HTTP server:
``POST /alertmanager/{namespace}`` with ``Authorization: Bearer <token>``. Each alert becomes a
signal like an alert from the bus: one incident per fingerprint (or group), a playbook on firing
(named by the ``playbook`` label or annotation), closed when resolved."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from aiohttp import web
from hms_contracts import deterministic_id
from hms_contracts.errors import SubjectError
from hms_contracts.tokens import check_namespace
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .core import Signal
from .engine import Engine

log = logging.getLogger(__name__)

_SEVERITIES = {"info": "info", "warning": "warning", "critical": "critical", "page": "critical"}


class AmAlert(BaseModel):
    """One alert of Alertmanager's webhook payload."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime
    endsAt: AwareDatetime | None = None
    fingerprint: str = Field(pattern=r"^[0-9a-f]{16,64}$")


class AmPayload(BaseModel):
    """Alertmanager's webhook body, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[AmAlert] = Field(max_length=10_000)


def signals_of(namespace: str, payload: AmPayload, now: datetime) -> list[Signal]:
    signals = []
    for alert in payload.alerts:
        labels = {k: v[:1024] for k, v in alert.labels.items()}
        name = labels.get("alertname", "alertmanager")
        severity = _SEVERITIES.get(labels.get("severity", ""), "warning")
        title = alert.annotations.get("summary") or alert.annotations.get("description") or name
        playbook = labels.get("playbook") or alert.annotations.get("playbook")
        signals.append(
            Signal(
                namespace=namespace,
                event_id=deterministic_id(
                    namespace, "alertmanager", alert.fingerprint, alert.startsAt, alert.status
                ),
                kind=alert.status,
                fingerprint=alert.fingerprint,
                rule_id=name,
                severity=severity,  # type: ignore[arg-type]
                title=title[:1024],
                occurred_at=now,
                labels=labels,
                source="alertmanager",
                playbook=playbook,
            )
        )
    return signals


#: where the webhook is mounted on the service's HTTP server: ``POST /alertmanager/<namespace>``
MOUNT = "/alertmanager/"


def alertmanager_page(
    engine_of: Callable[[], Engine | None], token: Callable[[], str | None]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The webhook, mounted at :data:`MOUNT`; ``engine_of`` is None while not leading."""

    async def receive(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        want = token()
        got = request.headers.get("Authorization", "")
        if not want or not hmac.compare_digest(got.encode(), f"Bearer {want}".encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            namespace = check_namespace(request.path.removeprefix(MOUNT))
        except SubjectError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        engine = engine_of()
        if engine is None:
            return web.json_response({"error": "not the leading instance"}, status=503)
        try:
            payload = AmPayload.model_validate_json(await request.read())
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            return web.json_response(
                {"error": f"not an Alertmanager v4 payload: {detail}"}, status=400
            )
        signals = signals_of(namespace, payload, engine.clock.now())
        starts = await engine.take(signals)
        log.info("alertmanager: %d alert(s) for %s", len(signals), namespace)
        return web.Response(
            text=json.dumps({"accepted": len(signals), "runs": len(starts)}),
            content_type="application/json",
        )

    return receive
