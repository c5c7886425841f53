"""``hms-ops queues pause|resume QUEUE``: the documents' human in the loop. A paused queue hands
out nothing (runs and work items stay where they are, kept by the workers that hold them)
until it is resumed; each change is recorded in the namespace's audit log with who made it.
The pause is a key in the ``hms_job_control`` bucket that every worker reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from hms_contracts import specs
from hms_contracts.tokens import check_namespace, check_token
from nats.aio.client import Client
from nats.js.errors import KeyDeletedError, KeyNotFoundError

from .applycli import StateDir
from .buscli import actor, audit, on_bus
from .errors import InvalidObject
from .state import StatePaths

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Queue = Annotated[str, typer.Argument(help="The queue, e.g. ssa_re_score_q.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="The queue's namespace.")]


def _checked(namespace: str, queue: str) -> None:
    try:
        check_namespace(namespace)
        check_token(queue, "queue")
    except ValueError as exc:
        raise InvalidObject(str(exc)) from None


async def set_paused(
    nc: Client, namespace: str, queue: str, paused: bool, who: str
) -> dict[str, Any]:
    """Pause or resume ``queue``; the state after, and whether it changed."""
    _checked(namespace, queue)
    kv = await nc.jetstream().key_value(specs.JOB_CONTROL.bucket)
    key = specs.queue_pause_key(namespace, queue)
    try:
        await kv.get(key)
        was = True
    except (KeyNotFoundError, KeyDeletedError):
        was = False
    if paused and not was:
        body = {"paused_by": who, "at": datetime.now(UTC).isoformat()}
        await kv.put(key, json.dumps(body).encode())
    elif was and not paused:
        await kv.delete(key)
    changed = was != paused
    if changed:
        action = "queue.pause" if paused else "queue.resume"
        await audit(nc, namespace, who, action, f"{namespace}.{queue}", {})
    return {"namespace": namespace, "queue": queue, "paused": paused, "changed": changed}


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``queues`` command group to ``app``."""
    queues = typer.Typer(help="Work queues: pause and resume (audited).")
    app.add_typer(queues, name="queues")

    def change(
        queue: str, namespace: str, paused: bool, as_json: bool, state_dir: Path | None
    ) -> None:
        who = actor()
        row = on_bus(
            state_paths(state_dir), lambda nc: set_paused(nc, namespace, queue, paused, who)
        )
        if as_json:
            print(json.dumps(row, indent=2))
            return
        state = "paused" if paused else "resumed"
        print(f"{namespace}.{queue} {state}" + ("" if row["changed"] else " (already)"))

    @queues.command("pause")
    def pause(
        queue: Queue, namespace: NamespaceOpt, as_json: Json = False, state_dir: StateDir = None
    ) -> None:
        """Hand out nothing from QUEUE until it is resumed."""
        change(queue, namespace, True, as_json, state_dir)

    @queues.command("resume")
    def resume(
        queue: Queue, namespace: NamespaceOpt, as_json: Json = False, state_dir: StateDir = None
    ) -> None:
        """Hand out QUEUE's work again."""
        change(queue, namespace, False, as_json, state_dir)
