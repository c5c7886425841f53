"""``hms-ops tokens``, ``hms-ops events tail`` and ``hms-ops open``: the console's commands.

Tokens are made by the stack's admin: the token is printed once and only its bcrypt hash is
kept. Exit codes: 0 done, 1 refused or not found, 2 the stack could not be reached.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from hms_contracts import decode
from hms_contracts.tokens import check_namespace
from hms_ops.errors import StackError
from hms_ops.state import (
    ADMIN_USER,
    StatePaths,
    admin_bus,
    default_state_dir,
    read_stack_file,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from rich.console import Console
from rich.table import Table

from .tokens import KvTokens, check_scope, new_token, open_bucket

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="HMS_STATE_DIR", help="Where the stack keeps its state."),
]
DEFAULT_URL = "http://127.0.0.1:8700"

tokens = typer.Typer(help="API tokens of the console: create (printed once), list, revoke.")
events = typer.Typer(help="Events on the bus, live.")


def _paths(state_dir: Path | None) -> StatePaths:
    return StatePaths((state_dir or default_state_dir()).expanduser().resolve())


def _run(paths: StatePaths, work: Callable[[Client], Awaitable[T]]) -> T:
    async def go() -> T:
        async with admin_bus(paths) as nc:
            return await work(nc)

    try:
        return asyncio.run(go())
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


async def _audit(
    nc: Client, namespace: str, action: str, token_id: str, name: str, role: str
) -> None:
    """Tokens are changes too: recorded in the namespace's audit chain (every namespace's
    tokens in the system namespace's)."""
    from hms_contracts.base import SYSTEM_NAMESPACE

    from .adapters import BusAuditLog

    where = SYSTEM_NAMESPACE if namespace == "*" else namespace
    detail = {"name": name, "role": role, "namespace": namespace}
    await BusAuditLog(nc.jetstream()).record(where, ADMIN_USER, action, token_id, detail)


def parse_expiry(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m`` from now, or an ISO date/time (UTC when no offset)."""
    found = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if found:
        amount, unit = int(found.group(1)), found.group(2)
        step = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}[unit]
        return now + amount * step
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--expires {text!r}: give a duration (30d, 12h, 90m) or an ISO date"
        ) from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at <= now:
        raise ValueError(f"--expires {text!r} is in the past")
    return at


@tokens.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help="viewer, responder, author or admin.")],
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of the role ('*': all, admin).")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Who holds it (shown in the audit log).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="30d, 12h, 90m, or an ISO date.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Make a token; it is printed once, only its hash is kept."""
    now = datetime.now(UTC)
    try:
        checked_role, checked_ns = check_scope(role, namespace)
        until = None if expires is None else parse_expiry(expires, now)
        holder = name or f"{checked_role}-{checked_ns.replace('*', 'all')}"
        if not re.fullmatch(r"[A-Za-z0-9_.@\-]{1,64}", holder):
            raise ValueError(f"--name {holder!r}: letters, digits and _ . @ - only, 1-64")
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    token, record = new_token(holder, checked_role, checked_ns, until)

    async def store(nc: Client) -> None:
        await KvTokens(await open_bucket(nc.jetstream(), create=True)).put(record)
        await _audit(nc, record.namespace, "token.created", record.id, holder, checked_role)

    _run(_paths(state_dir), store)
    if as_json:
        print(
            json.dumps(
                {
                    "token": token,
                    "id": record.id,
                    "name": holder,
                    "role": checked_role,
                    "namespace": checked_ns,
                    "expires_at": until and until.isoformat(),
                }
            )
        )
        return
    err.print(
        f"Token {record.id} for {holder}: {checked_role} of {checked_ns}"
        + (f", expires {until.isoformat()}" if until else "")
        + ". It is shown once: keep it now."
    )
    print(token)


@tokens.command("list")
def list_tokens(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Every token: id, holder, role, namespace, expiry, state (never the secret)."""

    async def read(nc: Client) -> list[dict[str, object]]:
        found = await KvTokens(await open_bucket(nc.jetstream(), create=True)).all()
        now = datetime.now(UTC)
        return [
            {
                "id": r.id,
                "name": r.name,
                "role": r.role,
                "namespace": r.namespace,
                "created_at": r.created_at.isoformat(),
                "expires_at": r.expires_at and r.expires_at.isoformat(),
                "state": "revoked" if r.revoked_at else ("live" if r.live(now) else "expired"),
            }
            for r in found
        ]

    rows = _run(_paths(state_dir), read)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table()
    for col in ("id", "name", "role", "namespace", "expires_at", "state"):
        table.add_column(col)
    for r in rows:
        colour = "green" if r["state"] == "live" else "red"
        table.add_row(
            *(str(r[c] or "-") for c in ("id", "name", "role", "namespace", "expires_at")),
            f"[{colour}]{r['state']}[/]",
        )
    out.print(table)


@tokens.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tokens list).")],
    state_dir: StateDir = None,
) -> None:
    """Revoke a token: its API calls and browser sessions stop working."""

    async def do(nc: Client) -> bool:
        store = KvTokens(await open_bucket(nc.jetstream(), create=True))
        record = await store.record(token_id)
        if record is None:
            return False
        if record.revoked_at is None:
            await store.put(record.model_copy(update={"revoked_at": datetime.now(UTC)}))
            await _audit(nc, record.namespace, "token.revoked", record.id, record.name, record.role)
        return True

    if not _run(_paths(state_dir), do):
        err.print(f"[red]error:[/] no token {token_id!r}")
        raise typer.Exit(1)
    err.print(f"token {token_id} revoked")


@events.command("tail")
def tail(
    subject: Annotated[str, typer.Argument(help="A subject or pattern, e.g. 'ops.incident.*.>'.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    count: Annotated[
        int, typer.Option("--count", help="Stop after this many (0: run until Ctrl-C).")
    ] = 0,
    state_dir: StateDir = None,
) -> None:
    """Print events on SUBJECT as they arrive: pretty, or JSON lines with --json."""

    async def follow(nc: Client) -> None:
        done = asyncio.Event()
        seen = 0

        async def on_msg(msg: Msg) -> None:
            nonlocal seen
            try:
                event = decode(msg.subject, msg.data)
                body = event.model_dump(mode="json")
                kind = type(event).__name__
            except Exception:
                body = {"raw": msg.data.decode(errors="replace")}
                kind = "?"
            if as_json:
                print(json.dumps({"subject": msg.subject, "type": kind, "event": body}), flush=True)
            else:
                at = body.get("occurred_at", "")
                text = body.get("summary") or body.get("title") or body.get("detail") or ""
                out.print(f"[dim]{at}[/] [bold cyan]{msg.subject}[/] [yellow]{kind}[/] {text}")
            seen += 1
            if count and seen >= count:
                done.set()

        await nc.subscribe(subject, cb=on_msg)
        await nc.flush()
        if not as_json:
            err.print(f"following {subject} (Ctrl-C stops)")
        await done.wait()

    try:
        _run(_paths(state_dir), follow)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def console_url(paths: StatePaths) -> str:
    """The running stack's console (its stack file), else the default address."""
    try:
        stack = read_stack_file(paths)
    except StackError:
        stack = None
    found = None if stack is None else stack.get("dashboard_url")
    if isinstance(found, str) and found:
        return found.removesuffix("/dashboard")
    return DEFAULT_URL


def open_dashboard(
    namespace: Annotated[str | None, typer.Argument(help="Namespace of the dashboard.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", envvar="HMS_CONSOLE_URL", help="The console's URL.")
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the URL, do not open a browser.")
    ] = False,
    state_dir: StateDir = None,
) -> None:
    """Print the dashboard's URL (of the running stack, or --url), and open it in a browser
    when there is one."""
    base = (url or console_url(_paths(state_dir))).rstrip("/")
    if namespace is not None:
        try:
            check_namespace(namespace)
        except ValueError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
    target = f"{base}/dashboard" + (f"/{namespace}" if namespace else "")
    print(target)
    if not print_only and sys.stdout.isatty() and os.environ.get("DISPLAY"):
        webbrowser.open(target)


report = typer.Typer(help="Reports for oversight bodies.")


@report.command("compliance")
def compliance(
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The namespace.")],
    month: Annotated[str, typer.Option("--month", help="YYYY-MM (UTC).")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder the CSV and the PDF are written to.")
    ] = Path("."),
    state_dir: StateDir = None,
) -> None:
    """The month's compliance per job and objective, every breach, incident and scheduled run:
    ``compliance-<ns>-<month>.csv`` and ``.pdf``; the summary printed in plain English."""
    from hms_contracts import specs
    from hms_contracts.config import Alert, Job, Slo
    from hms_ops.configstore import ConfigStore

    from .core.report import build, month_bounds
    from .reportout import to_csv, to_pdf
    from .settings import ConsoleSettings
    from .streams import namespace_events

    try:
        check_namespace(namespace)
        start, _ = month_bounds(month)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None

    async def gather(nc: Client) -> Any:
        js = nc.jetstream()
        store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author=ADMIN_USER)
        jobs = [s.object for s in await store.objects(namespace, "job")]
        alerts = [s.object for s in await store.objects(namespace, "alert")]
        slos = [s.object for s in await store.objects(namespace, "slo")]
        events = await namespace_events(js, namespace, start)
        return build(
            namespace,
            month,
            events,
            [j for j in jobs if isinstance(j, Job)],
            [a for a in alerts if isinstance(a, Alert)],
            ConsoleSettings.model_fields["slo_target"].default,
            [o for o in slos if isinstance(o, Slo)],
        )

    found = _run(_paths(state_dir), gather)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"compliance-{namespace}-{month}"
    base.with_suffix(".csv").write_text(to_csv(found))
    base.with_suffix(".pdf").write_bytes(to_pdf(found))
    for line in found.summary():
        print(line)
    err.print(f"wrote {base}.csv and {base}.pdf")
