"""The ``hms-ops`` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import StackError
from .launch import LauncherName
from .state import ADMIN_USER, StatePaths, default_state_dir
from .status import as_json, collect_status, problems

if TYPE_CHECKING:
    from .stack import Stack

app = typer.Typer(
    name="hms-ops",
    help="hms-ops: an operations control plane for public-sector services.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="HMS_STATE_DIR", help="Where the stack keeps its state."),
]


def _paths(state_dir: Path | None) -> StatePaths:
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
def up(
    state_dir: StateDir = None,
    nats_port: Annotated[
        int, typer.Option(envvar="HMS_NATS_PORT", help="NATS port on loopback.", min=1, max=65535)
    ] = 4222,
    console_port: Annotated[
        int, typer.Option(envvar="HMS_CONSOLE_PORT", help="Dashboard port.", min=1, max=65535)
    ] = 8700,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every service.", min=1)
    ] = 30.0,
    heartbeat_interval: Annotated[
        float, typer.Option(help="Seconds between service heartbeats.", min=0.1)
    ] = 2.0,
    launcher: Annotated[
        LauncherName,
        typer.Option(help="fork: from a preloaded server (fast start); exec: fresh interpreters."),
    ] = "fork",
) -> None:
    """Run the whole stack: embedded NATS and every service, supervised, until Ctrl-C."""
    from .stack import UpOptions, run_up  # the server side: only `up` pays for its imports

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    opts = UpOptions(
        paths=_paths(state_dir),
        nats_port=nats_port,
        console_port=console_port,
        ready_timeout_s=ready_timeout,
        launcher=launcher,
        heartbeat_interval_s=heartbeat_interval,
    )

    def ready(stack: Stack) -> None:
        info = stack.describe()
        table = Table(title=f"hms-ops is up in {stack.ready_s:.1f}s", title_justify="left")
        for col in ("service", "pid", "health", "url"):
            table.add_column(col, no_wrap=True)  # URLs stay whole when piped
        for name, svc in info["services"].items():
            ok = stack.healthy.get(name, False)
            table.add_row(
                name,
                str(svc["pid"]),
                "[green]ok[/]" if ok else "[red]not ready[/]",
                svc["http_url"] + "/healthz",
            )
        console.print(table)
        console.print(f"NATS       {info['nats_url']}")
        console.print(f"State      {info['state_dir']}   (logs in {stack.opts.paths.logs})")
        console.print(f"Dashboard  [bold]{info['dashboard_url']}[/]")
        if all(stack.healthy.values()):
            console.print("Press Ctrl-C to stop.")
        else:
            err.print("[red]some services did not become healthy; stopping. See their logs.[/]")
        sys.stdout.flush()  # the URLs must reach a log or a pipe now, not at exit

    try:
        code = asyncio.run(run_up(opts, ready))
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if code == 0:
        console.print("stopped; no process left behind.")
    raise typer.Exit(code)


@app.command()
def status(
    state_dir: StateDir = None,
    as_json_: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Every service with version, instance, health and uptime; non-zero exit if any is not ok."""
    try:
        rows = asyncio.run(collect_status(_paths(state_dir)))
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
    wrong = problems(rows)
    for line in wrong:
        err.print(f"[red]not ok:[/] {line}")
    raise typer.Exit(1 if wrong else 0)


@app.command()
def provision(
    nats_url: Annotated[
        str, typer.Option(envvar="HMS_NATS_URL", help="NATS server URL.")
    ] = "nats://127.0.0.1:4222",
    user: Annotated[str, typer.Option(envvar="HMS_NATS_USER", help="Admin user.")] = ADMIN_USER,
    password: Annotated[
        str, typer.Option(envvar="HMS_NATS_PASSWORD", help="Admin password (env preferred).")
    ] = "",
) -> None:
    """Create the shared streams and buckets and every service's streams and consumers, as the
    admin (what `up` does before starting services; run it before a service run alone)."""
    from .stack import provision_with

    try:
        asyncio.run(provision_with(nats_url, user, password))
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"provisioned the catalogue on {nats_url}")


def main() -> None:
    app()
