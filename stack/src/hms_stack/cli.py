"""``hms-ops up``: added to the ``hms-ops`` command through the ``hms_ops.commands`` entry point."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from hms_kit.tls import TlsError, client_tls
from hms_ops.cli import StateDir, console, err, state_paths
from hms_ops.state import ADMIN_USER
from rich.table import Table

from .errors import StackError
from .launch import LauncherName
from .stack import NatsTls, Stack, UpOptions, provision_with, run_up


def _tail(log: Path, lines: int = 4) -> str:
    """The last lines of a service's log: usually why it did not start."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "  (no log)"
    return "\n".join("  " + line[:300] for line in text[-lines:])


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
    nats_host: Annotated[
        str,
        typer.Option(
            envvar="HMS_NATS_HOST",
            help="Address NATS listens on; anything but loopback needs the --nats-tls-* files.",
        ),
    ] = "127.0.0.1",
    nats_tls_cert: Annotated[
        Path | None, typer.Option(envvar="HMS_NATS_TLS_CERT", help="nats-server's certificate.")
    ] = None,
    nats_tls_key: Annotated[
        Path | None, typer.Option(envvar="HMS_NATS_TLS_KEY", help="Its private key.")
    ] = None,
    nats_tls_ca: Annotated[
        Path | None,
        typer.Option(envvar="HMS_NATS_TLS_CA", help="The CA that signed it (services trust it)."),
    ] = None,
) -> None:
    """Run the whole stack: embedded NATS and every service, supervised, until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tls_files = (nats_tls_cert, nats_tls_key, nats_tls_ca)
    if any(tls_files) and not all(tls_files):
        err.print("[red]error:[/] --nats-tls-cert, --nats-tls-key and --nats-tls-ca go together")
        raise typer.Exit(2)
    opts = UpOptions(
        nats_host=nats_host,
        nats_tls=NatsTls(nats_tls_cert, nats_tls_key, nats_tls_ca)
        if nats_tls_cert and nats_tls_key and nats_tls_ca
        else None,
        paths=state_paths(state_dir),
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
            for name, svc in info["services"].items():
                if not stack.healthy.get(name, False):
                    err.print(f"{name} ({svc['log']}):", markup=False)
                    err.print(_tail(Path(svc["log"])), markup=False, highlight=False)
        sys.stdout.flush()  # the URLs must reach a log or a pipe now, not at exit

    try:
        code = asyncio.run(run_up(opts, ready))
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if code == 0:
        console.print("stopped; no process left behind.")
    raise typer.Exit(code)


def provision(
    nats_url: Annotated[
        str, typer.Option(envvar="HMS_NATS_URL", help="NATS server URL.")
    ] = "nats://127.0.0.1:4222",
    user: Annotated[str, typer.Option(envvar="HMS_NATS_USER", help="Admin user.")] = ADMIN_USER,
    password: Annotated[
        str, typer.Option(envvar="HMS_NATS_PASSWORD", help="Admin password (env preferred).")
    ] = "",
    replicas: Annotated[
        int,
        typer.Option(
            envvar="HMS_STREAM_REPLICAS",
            help="Replicas of every stream and bucket (3 on a 3-node cluster).",
            min=1,
            max=5,
        ),
    ] = 1,
    tls_ca: Annotated[
        Path | None,
        typer.Option(envvar="HMS_NATS_TLS_CA", help="CA bundle that signed the server (TLS)."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(envvar="HMS_NATS_TLS_CERT", help="Client certificate (mTLS).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar="HMS_NATS_TLS_KEY", help="Client certificate's key.")
    ] = None,
) -> None:
    """Create the shared streams and buckets and every service's streams and consumers, as the
    admin (what `up` does before starting services; run it before a service run alone)."""
    try:
        tls = client_tls(tls_ca, tls_cert, tls_key)
    except TlsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    try:
        asyncio.run(provision_with(nats_url, user, password, replicas=replicas, tls=tls))
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"provisioned the catalogue on {nats_url}")
