"""``hms-ops scale status``: every pool the autoscaler runs, its backlog, workers and why.

The autoscaler's leader answers ``ops.scale_status.pools`` with its live view (the latest
decision of every pool, held or not, and its recent scale events). When no leader answers (the
autoscaler is down or taking over), the last decisions are read from the ``SCALE`` stream
instead, and the output says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from hms_contracts import specs, subjects
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from .applycli import StateDir, err
from .errors import StackError
from .state import StatePaths, admin_bus

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Only this namespace's pools.")
]
#: how long the autoscaler's leader has to answer
ASK_S = 3.0
#: scale events read per pool when the leader does not answer
FROM_STREAM = 200


async def ask_autoscaler(nc: Client) -> dict[str, Any] | None:
    """The leader's view of every pool, or None when no leader answers."""
    try:
        reply = await nc.request(subjects.SCALE_STATUS, b"", timeout=ASK_S)
    except (NoRespondersError, NatsTimeout, TimeoutError):
        return None
    data: dict[str, Any] = json.loads(reply.data)
    data["source"] = f"autoscaler {data.get('instance', '?')}"
    return data


async def read_stream(nc: Client) -> dict[str, Any]:
    """The recent decisions of every pool, from the SCALE stream (newest last)."""
    js = nc.jetstream()
    info = await js.stream_info(specs.SCALE.name)
    pools: dict[str, list[dict[str, Any]]] = {}
    last = int(info.state.last_seq or 0)
    if last:
        start = max(last - FROM_STREAM * 10, 1)
        sub = await js.subscribe(
            subjects.SCALE.wildcard(),
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            ),
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=1.0)
                event = json.loads(msg.data)
                pools.setdefault(f"{event['namespace']}.{event['pool']}", []).append(event)
                if msg.metadata.sequence.stream >= last:
                    break
        except (NatsTimeout, TimeoutError):
            pass
        finally:
            await sub.unsubscribe()
    rows = []
    for key, events in sorted(pools.items()):
        latest = events[-1]
        rows.append(
            {
                "pool": key,
                "namespace": latest["namespace"],
                "name": latest["pool"],
                "backend": latest["backend"],
                "min": None,
                "max": None,
                "workers": latest["desired"],
                "running": latest["current"],
                "backlog": latest["backlog"],
                "degraded": latest["degraded"],
                "last": latest,
                "decisions": events[-10:],
            }
        )
    return {"source": "the SCALE stream (no autoscaler leader answered)", "pools": rows}


async def pool_status(paths: StatePaths) -> dict[str, Any]:
    async with admin_bus(paths) as nc:
        return await ask_autoscaler(nc) or await read_stream(nc)


def render(status: dict[str, Any]) -> list[str]:
    """The text form: one block per pool, the latest decision's reason and the recent scales."""
    lines = [f"from {status['source']}"]
    if not status["pools"]:
        lines.append("no pools (apply a scale_policy)")
    for pool in status["pools"]:
        bounds = "" if pool["min"] is None else f"  min {pool['min']} max {pool['max']}"
        health = "DEGRADED" if pool["degraded"] else "ok"
        backlog = "unreadable" if pool["backlog"] is None else pool["backlog"]
        workers = f"workers {pool['workers']}"
        if pool.get("running") not in (None, pool["workers"]):
            workers += f" (running {pool['running']})"
        lines.append(
            f"{pool['pool']}  [{pool['backend']}]  {workers}  backlog {backlog}{bounds}  {health}"
        )
        if pool["last"] is not None:
            lines.append(f"  now: {pool['last']['reason']}")
        for event in pool["decisions"][-5:]:
            lines.append(
                f"  {event['occurred_at']}  {event['action']} {event['current']} -> "
                f"{event['desired']}: {event['reason']}"
            )
    return lines


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``scale`` command group to ``app``."""
    scale = typer.Typer(help="Autoscaled worker pools: backlog, workers and decisions.")
    app.add_typer(scale, name="scale")

    @scale.command("status")
    def status(
        namespace: NamespaceOpt = None, as_json: Json = False, state_dir: StateDir = None
    ) -> None:
        """Each pool: its backlog, workers, latest decision and recent scale events, and why."""
        try:
            found = asyncio.run(asyncio.wait_for(pool_status(state_paths(state_dir)), 30))
        except TimeoutError:
            err.print("[red]error:[/] the stack did not answer in time")
            raise typer.Exit(2) from None
        except StackError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        if namespace is not None:
            found["pools"] = [p for p in found["pools"] if p["namespace"] == namespace]
        if as_json:
            print(json.dumps(found, indent=2))
            return
        print("\n".join(render(found)))
