"""What a namespace's pages and API show, computed from the projection, the registered
config objects and JetStream's own counts. Generated from what is registered: a new metric,
alert or job shows up without code."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hms_contracts import specs
from hms_contracts import subjects as s
from hms_contracts.config import Alert, Job, Metric, Slo
from hms_contracts.config.schedule import next_fires
from nats.js.errors import NotFoundError

from .context import Console
from .core import svg
from .core.plain import Compliance, SloState, good_side, meets
from .core.window import bucketed

_TIME_UNITS = {"ms", "s", "us", "seconds", "milliseconds"}


@dataclass(frozen=True)
class Graph:
    metric: str
    unit: str
    svg: str
    latest: float | None
    points: int


def slo_states(console: Console, namespace: str) -> list[SloState]:
    """One badge per registered SLO, from the evaluator's latest SloStatusReported of it
    (grey until the first report)."""
    view = console.projection.ns(namespace)
    found = []
    for obj in console.config.objects("slo", namespace):
        if not isinstance(obj, Slo):
            continue
        if obj.metric is not None and obj.threshold is not None:
            unit = _unit_of(console, namespace, obj.metric)
            what = f"{obj.metric} events within {obj.threshold:g}{' ' + unit if unit else ''}"
        else:
            what = f"{obj.total} events counted good by {obj.good}"
        state = SloState(obj.name, obj.watched_metric, what, obj.objective, obj.window)
        report = view.slos.get(obj.name)
        if report is not None:
            state = SloState(
                obj.name,
                obj.watched_metric,
                what,
                report.objective,
                obj.window,
                good=report.good,
                total=report.total,
                reported=report.compliance,
                budget=report.budget_left,
                status=report.status,
                burning=tuple(report.burning),
                reported_at=report.occurred_at.isoformat(),
            )
        found.append(state)
    return found


def _unit_of(console: Console, namespace: str, metric: str) -> str:
    for obj in console.config.objects("metric", namespace):
        if isinstance(obj, Metric) and obj.name == metric:
            return obj.unit
    unit = console.projection.ns(namespace).metrics.unit_of(metric)
    if unit in ("", "1") and metric.endswith("seconds"):  # a Prometheus histogram's base unit
        return "s"
    return "" if unit == "1" else unit


def compliance(console: Console, namespace: str) -> list[Compliance | SloState]:
    """The namespace's objectives: each registered SLO as its evaluator reports it; where no
    SLO is registered, one objective per registered alert (the share of the window's samples
    on its good side, against the console's target; an SLA breach naming it turns it red)."""
    slos = slo_states(console, namespace)
    if slos:
        return list(slos)
    return list(alert_objectives(console, namespace))


def alert_objectives(console: Console, namespace: str) -> list[Compliance]:
    """Objectives read from alerts, for a namespace with no SLO registered."""
    view = console.projection.ns(namespace)
    breached = {b["slo_id"] for b in view.breaches if b.get("slo_id")}
    found: list[Compliance] = []
    for obj in console.config.objects("alert", namespace):
        if not isinstance(obj, Alert):
            continue
        side = good_side(obj.condition.operator)
        values = [v for _, v in view.metrics.points(obj.metric)]
        good = sum(1 for v in values if meets(v, side, obj.condition.threshold))
        found.append(
            Compliance(
                name=obj.name,
                metric=obj.metric,
                good=good,
                total=len(values),
                target=console.settings.slo_target,
                operator=side,
                threshold=obj.condition.threshold,
                unit=view.metrics.unit_of(obj.metric),
                breached=obj.name in breached,
            )
        )
    known = {c.name for c in found}
    for slo in sorted(breached - known):
        found.append(Compliance(slo, slo, 0, 0, console.settings.slo_target, "<=", 0, "", True))
    return found


def metric_names(console: Console, namespace: str) -> list[str]:
    registered = [o.name for o in console.config.objects("metric", namespace)]
    seen = console.projection.ns(namespace).metrics.names()
    return list(dict.fromkeys([*registered, *seen]))


def graph(console: Console, namespace: str, metric: str, buckets: int = 60) -> Graph:
    window = console.projection.ns(namespace).metrics
    end = time.time()
    start = end - console.settings.metric_window_s
    points = window.points(metric, since=start)
    rows = bucketed(points, start, end, buckets)
    threshold = None
    for obj in console.config.objects("alert", namespace):
        if isinstance(obj, Alert) and obj.metric == metric:
            threshold = obj.condition.threshold
    unit = window.unit_of(metric)
    for obj in console.config.objects("metric", namespace):
        if isinstance(obj, Metric) and obj.name == metric and not points:
            unit = obj.unit
    drawing = svg.latency_graph(metric, unit, rows, start, end, threshold=threshold)
    return Graph(metric, unit, drawing, window.latest(metric), len(points))


def error_rate(console: Console, namespace: str) -> tuple[float | None, str]:
    """The error rate to show: a metric named like one (its latest value), else the share of
    recent runs that failed."""
    window = console.projection.ns(namespace).metrics
    for name in window.names():
        if "error" in name:
            value = window.latest(name)
            if value is not None:
                unit = window.unit_of(name)
                return (value / 100 if unit == "%" else value), name
    runs = list(console.projection.ns(namespace).runs.values())
    ended = [r for r in runs if r.get("state") in ("completed", "failed", "dead_lettered")]
    if not ended:
        return None, "failed runs"
    return sum(1 for r in ended if r["state"] != "completed") / len(ended), "failed runs"


def incidents(console: Console, namespace: str, *, open_only: bool = False) -> list[Any]:
    items = console.projection.ns(namespace).incidents.values()
    chosen = [i for i in items if i.open or not open_only]
    return sorted(chosen, key=lambda i: i.opened_at, reverse=True)


def jobs(console: Console, namespace: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    view = console.projection.ns(namespace)
    breaches = {b["job_id"]: b for b in reversed(view.breaches) if b.get("job_id")}
    rows = []
    for obj in console.config.objects("job", namespace):
        if not isinstance(obj, Job):
            continue
        upcoming = [] if obj.paused else next_fires(obj, now, 1)
        runs = [r for r in view.runs.values() if r["job_id"] == obj.name]
        last = max(runs, key=lambda r: r["at"]) if runs else None
        breach = breaches.get(obj.name)
        sla = "no SLA" if obj.sla_minutes is None else "met"
        if breach is not None:
            sla = f"breached: {breach['reason'].replace('_', ' ')}"
        elif obj.sla_minutes is not None and last is None:
            sla = "no run yet"
        rows.append(
            {
                "id": obj.name,
                "schedule": obj.schedule,
                "timezone": obj.timezone,
                "queue": obj.queue,
                "paused": obj.paused,
                "next_run": upcoming[0].isoformat() if upcoming else None,
                "sla_minutes": obj.sla_minutes,
                "sla_state": sla,
                "last_run": last,
            }
        )
    return rows


async def queues(console: Console, namespace: str) -> list[dict[str, Any]]:
    """Depth per queue from JetStream's per-subject counts of the work-queue stream; workers
    from the worker pool's heartbeats; the latest scaling decision per queue."""
    depth: dict[str, int] = {}
    with contextlib.suppress(NotFoundError):
        info = await console.js.stream_info(
            specs.JOB_RUNS.name, subjects_filter=s.JOB_RUN.wildcard(namespace)
        )
        for subject, count in (info.state.subjects or {}).items():
            depth[subject.rsplit(".", 1)[-1]] = count
    in_flight = None
    with contextlib.suppress(NotFoundError):
        consumer = await console.js.consumer_info(specs.JOB_RUNS.name, specs.WORKER_RUNS.durable)
        in_flight = consumer.num_ack_pending
    workers = sum(1 for (svc, _), hb in console.projection.services.items() if svc == "worker-pool")
    names = set(depth) | {j["queue"] for j in jobs(console, namespace)}
    scaling = console.projection.ns(namespace).scaling
    rows = []
    for queue in sorted(names):
        decided = next((d for d in scaling.values() if d["queue"] == queue), None)
        rows.append(
            {
                "queue": queue,
                "depth": depth.get(queue, 0),
                "in_flight_all_queues": in_flight,
                "workers": workers,
                "desired_workers": None if decided is None else decided["desired"],
                "scaling_reason": None if decided is None else decided["reason"],
            }
        )
    return rows


def services(console: Console) -> list[dict[str, Any]]:
    rows = []
    for (service, instance), hb in sorted(console.projection.services.items()):
        rows.append(
            {
                "service": service,
                "instance": instance,
                "version": hb.version,
                "health": hb.health,
                "leader": hb.leader,
                "last_beat": hb.occurred_at.isoformat(),
            }
        )
    return rows
