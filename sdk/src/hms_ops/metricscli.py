"""``hms-ops metrics query | push``: read the collector's store and push a sample, from the shell.

``query`` asks the metrics-collector over the bus (a request on ``ops.query.metrics.<ns>``) for
one series aggregated per step: ``hms-ops metrics query api.latency_ms --range 1h --step 1m
--fn p99``. ``push`` sends one sample as a MetricSampleBatch (origin ``push``), with a TTL after
which the series expires unless pushed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from hms_contracts import MetricSampleBatch, subjects
from hms_contracts.config import parse_duration
from hms_contracts.metrics import QUERY_FNS, MetricQuery, MetricQueryResult
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError
from rich.console import Console

from .applycli import StateDir, on_bus
from .errors import HmsOpsError, InvalidObject
from .state import StatePaths

#: the namespace when neither --namespace nor HMS_NAMESPACE names one
DEFAULT_NAMESPACE = "default"
#: how long a query waits for the collector's answer
QUERY_TIMEOUT_S = 10.0
#: the source token of samples pushed from the command line
CLI_SOURCE = "cli"

err = Console(stderr=True)

NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: HMS_NAMESPACE, else 'default')."),
]


def _namespace(given: str | None) -> str:
    return given or os.environ.get("HMS_NAMESPACE", DEFAULT_NAMESPACE)


def _seconds(text: str, option: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        err.print(f"[red]error:[/] {option}: {exc}")
        raise typer.Exit(2) from None


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            err.print(f"[red]error:[/] --label {pair!r} must look like name=value")
            raise typer.Exit(2)
        labels[name] = value
    return labels


def format_result(result: MetricQueryResult) -> str:
    """The series as text: each series' name and labels, then one line per step."""
    lines: list[str] = []
    for s in result.series:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        lines.append(f"{s.name}{{{labels}}}" if labels else s.name)
        lines += [f"  {p.at.isoformat().replace('+00:00', 'Z')}  {p.value:g}" for p in s.points]
    return "\n".join(lines) if lines else "no samples"


async def ask(nc: Client, namespace: str, query: MetricQuery) -> MetricQueryResult:
    """Send one query to the collectors and read the answer."""
    subject = subjects.QUERY_METRICS.subject(namespace)
    try:
        reply = await nc.request(subject, query.model_dump_json().encode(), QUERY_TIMEOUT_S)
    except (NoRespondersError, NatsTimeoutError, TimeoutError):
        raise HmsOpsError(
            f"no metrics-collector answered on {subject} within {QUERY_TIMEOUT_S:g} s; "
            "is it running (hms-ops status)?"
        ) from None
    return MetricQueryResult.model_validate_json(reply.data)


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``metrics`` command group to ``app``."""
    metrics = typer.Typer(help="Metrics: query the collector's store, push a sample.")
    app.add_typer(metrics, name="metrics")

    @metrics.command("query")
    def query(
        series: Annotated[
            str, typer.Argument(help='A metric name, optionally with labels: name{k="v"}.')
        ],
        range_: Annotated[str, typer.Option("--range", help="How far back: 15m, 1h, 2d.")] = "1h",
        step: Annotated[str, typer.Option("--step", help="Width of each step: 1m, 5m.")] = "1m",
        fn: Annotated[
            str, typer.Option("--fn", help=f"Aggregation per step: {', '.join(QUERY_FNS)}.")
        ] = "last",
        namespace: NamespaceOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        state_dir: StateDir = None,
    ) -> None:
        """The series aggregated per step over the range (the collector answers)."""
        if fn not in QUERY_FNS:
            err.print(f"[red]error:[/] --fn {fn!r} must be one of {', '.join(QUERY_FNS)}")
            raise typer.Exit(2)
        ns = _namespace(namespace)
        try:
            subjects.QUERY_METRICS.subject(ns)
            q = MetricQuery.model_validate(
                {
                    "series": series,
                    "range_s": _seconds(range_, "--range"),
                    "step_s": _seconds(step, "--step"),
                    "fn": fn,
                }
            )
        except (ValidationError, ValueError) as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        result = on_bus(state_paths(state_dir), lambda nc: ask(nc, ns, q))
        if result.error is not None:
            err.print(f"[red]error:[/] {result.error}")
            raise typer.Exit(1)
        print(result.model_dump_json(indent=2) if as_json else format_result(result))

    @metrics.command("push")
    def push(
        name: Annotated[str, typer.Argument(help="Dotted metric name, e.g. api.latency_ms.")],
        value: Annotated[float, typer.Argument(help="The measured value (finite).")],
        label: Annotated[
            list[str] | None, typer.Option("--label", "-l", help="A label, name=value (repeat).")
        ] = None,
        unit: Annotated[str, typer.Option("--unit", help="Unit of the value, e.g. ms.")] = "1",
        ttl: Annotated[
            str | None,
            typer.Option("--ttl", help="Expire the series this long after the push: 5m, 1h."),
        ] = None,
        namespace: NamespaceOpt = None,
        state_dir: StateDir = None,
    ) -> None:
        """Push one sample now (as the SDK's observe does, in a batch of one)."""
        ns = _namespace(namespace)
        now = datetime.now(UTC)
        try:
            batch = MetricSampleBatch.create(
                occurred_at=now,
                namespace=ns,
                source=CLI_SOURCE,
                origin="push",
                ttl_s=None if ttl is None else _seconds(ttl, "--ttl"),
                samples=[
                    {
                        "name": name,
                        "value": value,
                        "unit": unit,
                        "labels": _labels(label or []),
                        "observed_at": now,
                    }
                ],
            )
        except (ValidationError, ValueError) as exc:
            err.print(f"[red]error:[/] {InvalidObject(str(exc))}")
            raise typer.Exit(2) from None

        async def send(nc: Client) -> str:
            ack = await nc.jetstream().publish(
                batch.subject(),
                batch.model_dump_json().encode(),
                headers={"Nats-Msg-Id": batch.event_id},
            )
            return "already pushed" if ack.duplicate else "pushed"

        done = on_bus(state_paths(state_dir), send)
        expiry = "" if batch.ttl_s is None else f", expires {batch.ttl_s:g}s after"
        print(f"{done} {name}={value:g} to {batch.subject()}{expiry}")
