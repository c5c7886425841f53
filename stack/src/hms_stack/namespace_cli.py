"""``hms-ops namespaces``: namespace clients of the local stack (added through the
``hms_ops.commands`` entry point)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from hms_ops.cli import StateDir, console, err, state_paths
from rich.table import Table

from . import namespaces as ns
from .errors import StackError

app = typer.Typer(
    help="Namespace clients: credentials scoped to one namespace (no restart needed).",
    no_args_is_help=True,
)


@app.command()
def create(
    namespace: Annotated[str, typer.Argument(help="e.g. usds_unemployment (case is ignored)")],
    durable: Annotated[
        list[str] | None,
        typer.Option("--durable", help="A durable subscription name to allow (repeatable)."),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Create a namespace and its client credential (or allow more durables); the running
    stack picks it up at once."""
    paths = state_paths(state_dir)
    try:
        client = ns.create(paths, namespace, durable or ())
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"namespace {client.namespace}: user {client.user}, credential in "
        f"{paths.namespace_file(client.namespace)}"
        + (f", durables {', '.join(client.durables)}" if client.durables else "")
    )


@app.command(name="list")
def list_(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every namespace with a client credential."""
    try:
        clients = ns.list_clients(state_paths(state_dir))
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        rows = [
            {"namespace": c.namespace, "user": c.user, "durables": list(c.durables)}
            for c in clients
        ]
        print(json.dumps(rows))
        return
    table = Table()
    for col in ("namespace", "user", "durables", "created"):
        table.add_column(col)
    for c in clients:
        table.add_row(c.namespace, c.user, ", ".join(c.durables) or "-", c.created_at[:19])
    console.print(table)


@app.command()
def revoke(
    namespace: Annotated[str, typer.Argument(help="The namespace whose client to remove.")],
    state_dir: StateDir = None,
) -> None:
    """Remove a namespace's client credential; its open connections are closed at once."""
    try:
        removed = ns.revoke(state_paths(state_dir), namespace)
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if not removed:
        err.print(f"[red]error:[/] namespace {ns.normalise(namespace)} has no client here")
        raise typer.Exit(1)
    console.print(f"revoked the client of {ns.normalise(namespace)}")
