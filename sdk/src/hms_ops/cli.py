"""The ``hms-ops`` command line."""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .applycli import register as register_registry_commands
from .dlqcli import register as register_dlq_commands
from .errors import StackError
from .incidentscli import register as register_incident_commands
from .jobscli import register as register_jobs_commands
from .metricscli import register as register_metrics_commands
from .oncallcli import register as register_oncall_commands
from .queuescli import register as register_queues_commands
from .scalecli import register as register_scale_commands
from .state import StatePaths, default_state_dir
from .status import as_json, collect_status, problems, stack_problems

#: how long ``status`` waits for the whole answer (connect: 2 s of it), then says so
STATUS_TIMEOUT_S = 3.0

#: entry-point group through which other distributions add commands to ``hms-ops``
COMMANDS_GROUP = "hms_ops.commands"

app = typer.Typer(
    name="hms-ops",
    help="hms-ops: an operations control plane for public-sector services.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _commands() -> None:
    """hms-ops: an operations control plane for public-sector services."""
    # a group even when only the SDK's own commands are loaded (see main)


console = Console()
err = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="HMS_STATE_DIR", help="Where the stack keeps its state."),
]


def state_paths(state_dir: Path | None) -> StatePaths:
    return StatePaths((state_dir or default_state_dir()).expanduser().resolve())


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
        if s >= 3600
        else f"{s // 60}m{s % 60:02d}s"
    )


@app.command()
def status(
    state_dir: StateDir = None,
    as_json_: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Every service with version, instance, health and uptime; non-zero exit if any is not ok."""
    paths = state_paths(state_dir)
    try:
        rows = asyncio.run(asyncio.wait_for(collect_status(paths), STATUS_TIMEOUT_S))
    except TimeoutError:
        err.print(
            f"[red]error:[/] the stack running from {paths.root} did not answer within "
            f"{STATUS_TIMEOUT_S:g}s; is `hms-ops up` hung? Restart it"
        )
        raise typer.Exit(2) from None
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json_:
        print(as_json(rows))  # machine output: plain stdout, no markup
    else:
        table = Table()
        for col in ("service", "state", "version", "instance", "health", "uptime", "leader"):
            table.add_column(col, overflow="fold")
        for r in rows:
            colour = "green" if r.ok else "red"
            table.add_row(
                r.service,
                f"[{colour}]{r.state}[/]",
                r.version or "-",
                r.instance or "-",
                r.health or "-",
                _uptime(r.uptime_s),
                "-" if r.leader is None else ("yes" if r.leader else "standby"),
            )
        console.print(table)
    for line in stack_problems(paths):  # raised as an alert too: an incident tracks it
        err.print(f"[yellow]warning:[/] {line}")
    wrong = problems(rows)
    for line in wrong:
        err.print(f"[red]not ok:[/] {line}")
    raise typer.Exit(1 if wrong else 0)


register_registry_commands(app, state_paths)
register_jobs_commands(app, state_paths)
register_metrics_commands(app, state_paths)
register_scale_commands(app, state_paths)
register_oncall_commands(app, state_paths)
register_incident_commands(app, state_paths)
register_dlq_commands(app, state_paths)
register_queues_commands(app, state_paths)


def _add_commands() -> None:
    """Commands other distributions add (the stack adds ``up``), or a hint to install them."""
    found = {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}
    if "up" not in found:
        app.command(
            name="up", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
        )(_up_missing)
    for name, ep in sorted(found.items()):
        command = ep.load()
        if isinstance(command, typer.Typer):  # a group of commands
            app.add_typer(command, name=name)
        else:
            app.command(name=name)(command)


def _up_missing() -> None:
    """Run the whole stack (needs the hms-stack package)."""
    err.print(
        "error: `hms-ops up` runs the embedded stack, which is not installed here; "
        "install it with `pip install hms-stack` (from the hms-ops repository: `uv run hms-ops up`)"
    )
    raise typer.Exit(2)


def main() -> None:
    # a command of the SDK's own (``status``) does not pay for importing the stack's
    asked = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    own = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    own |= {g.name for g in app.registered_groups if g.name}
    if asked not in own:
        _add_commands()
    app()
