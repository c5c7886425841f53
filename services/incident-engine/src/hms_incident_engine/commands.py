"""Requests the incident engine answers on ``ops.incident_cmd.<ns>.<verb>`` (core
request/reply): the CLI's ``incidents list|show|ack|resolve|approve`` and ``audit
verify|export``. Each answer is JSON: ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": "..."}``; what it shows was masked when it was recorded."""

from __future__ import annotations

import json
import logging
from typing import Any

from hms_contracts import subjects
from nats.aio.client import Client
from nats.aio.msg import Msg

from .core import TransitionError
from .engine import Engine, IncidentNotFound

log = logging.getLogger(__name__)

MAX_LIST = 1000


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: a non-empty string is required")
    return value[:256]


async def dispatch(engine: Engine, namespace: str, verb: str, body: dict[str, Any]) -> Any:
    store = engine.store
    if verb == "list":
        which = body.get("status", "open")
        limit = min(int(body.get("limit", 100)), MAX_LIST)
        return await store.rows(
            "SELECT incident_id, status, severity, title, cause, playbook, opened_at, "
            "updated_at, closed_at, acknowledged_by FROM incidents WHERE namespace = ? "
            "AND (? OR closed_at IS NULL) ORDER BY opened_at DESC LIMIT ?",
            (namespace, which == "all", limit),
        )
    if verb == "show":
        iid = _text(body, "incident_id")
        incident = await store.incident(namespace, iid)
        if incident is None:
            raise IncidentNotFound(f"no incident {iid!r} in namespace {namespace!r}")
        incident["labels"] = json.loads(incident["labels"])
        incident["timeline"] = await store.timeline(namespace, iid)
        incident["steps"] = await store.rows(
            "SELECT step_index, attempt, status, started_at, ended_at, exit_code FROM steps "
            "WHERE namespace = ? AND incident_id = ? ORDER BY step_index, attempt",
            (namespace, iid),
        )
        incident.pop("group_key", None)
        return incident
    if verb == "ack":
        iid = _text(body, "incident_id")
        await engine.acknowledge(namespace, iid, _text(body, "actor"), _text(body, "via", "cli"))
        return await store.incident(namespace, iid)
    if verb == "resolve":
        iid = _text(body, "incident_id")
        note = body.get("note")
        return await engine.resolve(
            namespace, iid, _text(body, "actor"), note if isinstance(note, str) else None
        )
    if verb == "approve":
        iid = _text(body, "incident_id")
        return {"step": await engine.approve(namespace, iid, _text(body, "actor"))}
    if verb == "audit_verify":
        checked, broken = await store.verify_audit(namespace)
        return {"checked": checked, "broken": broken}
    if verb == "audit_export":
        after = int(body.get("after", 0))
        limit = min(int(body.get("limit", 500)), 1000)
        return await store.audit_records(namespace, after, limit)
    raise ValueError(f"unknown request {verb!r}; known: {', '.join(subjects.INCIDENT_VERBS)}")


async def serve(nc: Client, engine: Engine) -> Any:
    """Answer requests until the returned subscription is unsubscribed."""

    async def on_request(msg: Msg) -> None:
        try:
            namespace = subjects.INCIDENT_COMMAND.namespace_of(msg.subject)
            verb = msg.subject.rsplit(".", 1)[1]
            body = json.loads(msg.data) if msg.data else {}
            if not isinstance(body, dict):
                raise ValueError("the request must be a JSON object")
            answer = {"ok": True, "result": await dispatch(engine, namespace, verb, body)}
        except (IncidentNotFound, TransitionError, ValueError) as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("request on %s failed", msg.subject)
            answer = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
        if msg.reply:
            await msg.respond(json.dumps(answer, default=str).encode())

    return await nc.subscribe(subjects.INCIDENT_COMMAND.wildcard(), cb=on_request)
