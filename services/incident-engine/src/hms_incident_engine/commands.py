"""Requests the incident engine answers on ``ops.incident_cmd.<ns>.<verb>`` (core
request/reply): the CLI's ``incidents list|show|ack|resolve|approve`` and ``audit
verify|export``. Each answer is JSON: ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": "..."}``; what it shows was masked when it was recorded."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from hms_contracts import subjects
from hms_contracts.commands import COMMANDS, CommandReplied, CommandRequested
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

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


#: the console's commands (``ops.request.<ns>.<command>``) this engine answers, by verb
CONSOLE_COMMANDS: dict[str, str] = {
    "incident_ack": "ack",
    "incident_resolve": "resolve",
    "incident_approve": "approve",
}
#: every command hms_contracts.commands assigns to the engine; those without a verb are refused
#: (501) rather than left to time out
OWNED = tuple(c for c, owner in COMMANDS.items() if owner == "incident-engine")


def console_subjects() -> tuple[str, ...]:
    """``ops.request.*.<command>`` for each console command the engine answers."""
    base = subjects.REQUEST.wildcard().removesuffix(">")
    return tuple(base + command for command in OWNED)


async def answer_command(engine: Engine, subject: str, data: bytes) -> CommandReplied:
    """A console command, carrying who asked, done as the CLI's request of the same verb."""
    try:
        request = CommandRequested.model_validate_json(data)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return CommandReplied(
            request_id="invalid", ok=False, status=422, detail=f"not a command: {detail}"[:500]
        )
    if request.subject() == subject and request.command not in CONSOLE_COMMANDS:
        return CommandReplied(
            request_id=request.request_id,
            ok=False,
            status=501,
            detail=f"the incident engine does not do {request.command} yet",
        )
    if request.subject() != subject:
        return CommandReplied(
            request_id=request.request_id,
            ok=False,
            status=422,
            detail=f"{request.command} in {request.namespace} does not belong on {subject}",
        )
    body: dict[str, Any] = {"incident_id": request.target, "actor": request.actor}
    body["via"] = "console"
    note = request.args.get("note")
    if isinstance(note, str):
        body["note"] = note
    verb = CONSOLE_COMMANDS[request.command]
    try:
        result = await dispatch(engine, request.namespace, verb, body)
    except IncidentNotFound as exc:
        status, detail, ok = 404, str(exc), False
    except TransitionError as exc:
        status, detail, ok = 409, str(exc), False
    except ValueError as exc:
        status, detail, ok = 422, str(exc), False
    else:
        status, detail, ok = 200, f"{request.command} of {request.target} done", True
    return CommandReplied(
        request_id=request.request_id,
        ok=ok,
        status=status,
        detail=detail[:500],
        result={"incident": json.loads(json.dumps(result, default=str))} if ok else {},
        replied_at=datetime.now(UTC),
    )


async def serve(nc: Client, engine: Engine) -> Any:
    """Answer requests until the returned subscription is unsubscribed: the CLI's on
    ``ops.incident_cmd.<ns>.<verb>`` and the console's incident commands."""

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

    async def on_command(msg: Msg) -> None:
        try:
            reply = await answer_command(engine, msg.subject, msg.data)
        except Exception as exc:
            log.exception("command on %s failed", msg.subject)
            reply = CommandReplied(
                request_id="failed", ok=False, status=500, detail=f"internal error: {exc!r}"[:500]
            )
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    subscriptions = [await nc.subscribe(subjects.INCIDENT_COMMAND.wildcard(), cb=on_request)]
    for subject in console_subjects():
        subscriptions.append(await nc.subscribe(subject, cb=on_command))
    return _Subscriptions(subscriptions)


class _Subscriptions:
    """Several subscriptions that go together."""

    def __init__(self, subscriptions: list[Any]) -> None:
        self.subscriptions = subscriptions

    async def unsubscribe(self) -> None:
        for subscription in self.subscriptions:
            await subscription.unsubscribe()
