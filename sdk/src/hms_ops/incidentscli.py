"""``hms-ops incidents | silences | audit ...``: incidents and the audit log through the incident
engine's requests (``ops.incident_cmd.<ns>.<verb>``), silences through the config registry.

``audit export`` writes one record per line (JSON, as published on the audit stream); an auditor
checks the file alone with ``python -m hms_contracts.auditverify FILE`` (standard library only).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from hms_contracts import subjects
from hms_contracts.auditverify import verify_chain
from hms_contracts.config import Playbook, Silence, parse_duration
from hms_contracts.config.incidents import MASK, ParamError, render_step, resolve_params
from rich.console import Console

from .applycli import StateDir, on_registry
from .configstore import ConfigStore
from .errors import InvalidObject, StackError
from .state import StatePaths, admin_bus

#: how long a request waits for the incident engine
TIMEOUT_S = 10.0

err = Console(stderr=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NamespaceOpt = Annotated[
    str,
    typer.Option("--namespace", "-n", envvar="HMS_NAMESPACE", help="The namespace."),
]
IncidentId = Annotated[str, typer.Argument(help="The incident's id.")]
Actor = Annotated[str | None, typer.Option("--actor", help="Who acts (default: your login name).")]


class EngineError(Exception):
    """The incident engine refused a request, or did not answer."""


async def ask(paths: StatePaths, namespace: str, verb: str, body: dict[str, Any]) -> Any:
    """One request to the incident engine of the stack at ``paths``; its result."""
    async with admin_bus(paths) as nc:
        subject = subjects.INCIDENT_COMMAND.subject(namespace, verb)
        try:
            reply = await nc.request(subject, json.dumps(body).encode(), timeout=TIMEOUT_S)
        except Exception as exc:
            raise EngineError(f"the incident engine did not answer {verb}: {exc}") from None
    answer = json.loads(reply.data)
    if not answer.get("ok"):
        raise EngineError(str(answer.get("error")))
    return answer.get("result")


def _run(paths: StatePaths, namespace: str, verb: str, body: dict[str, Any]) -> Any:
    try:
        return asyncio.run(ask(paths, namespace, verb, body))
    except (EngineError, StackError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


class _AnySecret(dict[str, str]):
    """Every secret name is known and shows as the mask (a dry run knows no secret)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return MASK


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or getpass.getuser()


def export_audit(paths: StatePaths, namespace: str, out: Path) -> tuple[int, str | None]:
    """Write the namespace's audit chain to ``out`` (JSON lines); (records, first broken)."""
    records: list[dict[str, Any]] = []
    while True:
        after = records[-1]["sequence"] if records else 0
        page = _run(paths, namespace, "audit_export", {"after": after, "limit": 1000})
        if not page:
            break
        records.extend(page)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return verify_chain(records)


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``incidents``, ``silences`` and ``audit`` command groups to ``app``."""
    incidents = typer.Typer(help="Incidents: list, show, acknowledge, resolve, approve a step.")
    silences = typer.Typer(help="Silences (maintenance windows): add, list, expire.")
    audit = typer.Typer(help="The hash-chained audit log: verify, export.")
    app.add_typer(incidents, name="incidents")
    app.add_typer(silences, name="silences")
    app.add_typer(audit, name="audit")

    @incidents.command("list")
    def list_(
        namespace: NamespaceOpt,
        all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """Open incidents of a namespace, newest first."""
        body = {"status": "all" if all_ else "open"}
        rows = _run(state_paths(state_dir), namespace, "list", body)
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            print(f"{r['incident_id']}  {r['status']:<15} {r['severity']:<8} {r['title']}")

    @incidents.command("show")
    def show(
        incident_id: IncidentId,
        namespace: NamespaceOpt,
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """An incident with its timeline and steps."""
        found = _run(state_paths(state_dir), namespace, "show", {"incident_id": incident_id})
        if as_json:
            print(json.dumps(found, indent=2))
            return
        print(f"{found['incident_id']}  {found['status']}  {found['severity']}  {found['title']}")
        for t in found["timeline"]:
            print(f"  {t['at']}  {t['what']:<14} {t['actor']}: {t['text']}")

    @incidents.command("ack")
    def ack(
        incident_id: IncidentId,
        namespace: NamespaceOpt,
        actor: Actor = None,
        state_dir: StateDir = None,
    ) -> None:
        """Acknowledge an incident (again: no change)."""
        body = {"incident_id": incident_id, "actor": _actor(actor), "via": "cli"}
        found = _run(state_paths(state_dir), namespace, "ack", body)
        print(f"{incident_id} acknowledged by {found['acknowledged_by']}")

    @incidents.command("resolve")
    def resolve(
        incident_id: IncidentId,
        namespace: NamespaceOpt,
        note: Annotated[str | None, typer.Option("--note", help="How it ended.")] = None,
        actor: Actor = None,
        state_dir: StateDir = None,
    ) -> None:
        """Resolve an incident (it closes)."""
        body = {"incident_id": incident_id, "actor": _actor(actor), "note": note}
        status = _run(state_paths(state_dir), namespace, "resolve", body)
        print(f"{incident_id} {status}")

    @incidents.command("approve")
    def approve(
        incident_id: IncidentId,
        namespace: NamespaceOpt,
        actor: Actor = None,
        state_dir: StateDir = None,
    ) -> None:
        """Approve the approval step the incident's playbook waits on."""
        body = {"incident_id": incident_id, "actor": _actor(actor)}
        found = _run(state_paths(state_dir), namespace, "approve", body)
        print(f"{incident_id}: step {found['step']} approved")

    @incidents.command("playbook")
    def playbook(
        name: Annotated[str, typer.Argument(help="The playbook's name.")],
        namespace: NamespaceOpt,
        label: Annotated[
            list[str] | None,
            typer.Option("--label", "-l", help="An alert label, name=value (repeatable)."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Render the steps; run nothing (required).")
        ] = False,
        state_dir: StateDir = None,
    ) -> None:
        """Render a playbook's steps for an alert's labels, exactly as the engine would run
        them (parameters checked, secrets masked), without running anything."""
        if not dry_run:
            err.print(
                "[red]error:[/] playbooks run when their alert fires; "
                "pass --dry-run to see what would run"
            )
            raise typer.Exit(2)
        labels: dict[str, str] = {}
        for item in label or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                err.print(f"[red]error:[/] --label {item!r}: expected name=value")
                raise typer.Exit(2)
            labels[key] = value

        async def read(store: ConfigStore) -> Playbook:
            found = await store.get(namespace, "playbook", name)
            if found is None or not isinstance(found.object, Playbook):
                raise InvalidObject(f"no playbook {name!r} in namespace {namespace!r}")
            return found.object

        pb = on_registry(state_paths(state_dir), read)
        try:
            values = resolve_params(pb.params, labels)
            steps = [render_step(step, values, _AnySecret()) for step in pb.steps]
        except ParamError as exc:
            err.print(f"[red]refused:[/] {exc}; nothing would run")
            raise typer.Exit(1) from None
        for i, argv in enumerate(steps):
            print(f"{i}: {json.dumps(list(argv))}")

    @silences.command("add")
    def add(
        name: Annotated[str, typer.Argument(help="The silence's name.")],
        namespace: NamespaceOpt,
        match: Annotated[
            list[str],
            typer.Option("--match", "-m", help='A matcher: label="value" (=, !=, =~, !~).'),
        ],
        duration: Annotated[str, typer.Option("--for", help="How long, e.g. 2h.")],
        reason: Annotated[str, typer.Option("--reason", help="Why.")],
        author: Actor = None,
        state_dir: StateDir = None,
    ) -> None:
        """Mute matching alerts of a namespace for a while."""
        try:
            silence = Silence.model_validate(
                {
                    "namespace": namespace,
                    "name": name,
                    "matchers": match,
                    "ends_at": datetime.now(UTC) + parse_duration(duration),
                    "author": _actor(author),
                    "reason": reason,
                }
            )
        except ValueError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None

        async def write(store: ConfigStore) -> str:
            [done] = await store.apply([silence])
            return f"{done.key} until {silence.ends_at.isoformat()} ({done.action})"

        print(on_registry(state_paths(state_dir), write))

    @silences.command("list")
    def list_silences(
        namespace: NamespaceOpt, as_json: Json = False, state_dir: StateDir = None
    ) -> None:
        """Silences of a namespace, active or not."""

        async def read(store: ConfigStore) -> list[Silence]:
            found = await store.objects(namespace, "silence")
            return [s.object for s in found if isinstance(s.object, Silence)]

        now = datetime.now(UTC)
        rows = on_registry(state_paths(state_dir), read)
        if as_json:
            print(json.dumps([s.model_dump(mode="json") for s in rows], indent=2))
            return
        for s in rows:
            state = "active" if s.active(now) else "inactive"
            matchers = ", ".join(str(m) for m in s.matchers)
            print(f"{s.name}  {state}  until {s.ends_at.isoformat()}  {matchers}  ({s.reason})")

    @silences.command("expire")
    def expire(
        name: Annotated[str, typer.Argument(help="The silence's name.")],
        namespace: NamespaceOpt,
        state_dir: StateDir = None,
    ) -> None:
        """End a silence now (a versioned change: its history stays)."""

        async def change(store: ConfigStore) -> str:
            found = await store.get(namespace, "silence", name)
            if found is None or not isinstance(found.object, Silence):
                raise InvalidObject(f"no silence {name!r} in namespace {namespace!r}")
            now = datetime.now(UTC)
            old = found.object
            starts = old.starts_at if old.starts_at is not None and old.starts_at < now else None
            doc = old.model_dump() | {"ends_at": now, "starts_at": starts}
            [done] = await store.apply([Silence.model_validate(doc)])
            return f"{done.key} expired"

        print(on_registry(state_paths(state_dir), change))

    @audit.command("verify")
    def verify(namespace: NamespaceOpt, state_dir: StateDir = None) -> None:
        """Check the namespace's chain; names the first broken record (exit 1)."""
        found = _run(state_paths(state_dir), namespace, "audit_verify", {})
        if found["broken"] is not None:
            print(f"BROKEN: {found['broken']}")
            raise typer.Exit(1)
        print(f"OK: {found['checked']} records, the chain holds")

    @audit.command("export")
    def export(
        namespace: NamespaceOpt,
        output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
        state_dir: StateDir = None,
    ) -> None:
        """Write the chain to a file an auditor verifies alone
        (``python -m hms_contracts.auditverify FILE``)."""
        count, broken = export_audit(state_paths(state_dir), namespace, output)
        print(f"wrote {count} records to {output}")
        if broken is not None:
            print(f"BROKEN: {broken}")
            raise typer.Exit(1)
