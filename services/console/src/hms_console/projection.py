"""What the console shows, projected in memory from the streams it reads.

Each stream is read from its start (metrics: from the window's span back) by an ordered
consumer that goes on live, so a restarted console rebuilds the same picture; nothing is
acked or changed. Pages listening for a namespace get each change as it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hms_contracts import (
    AlertFiring,
    AlertResolved,
    BusEvent,
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStepRan,
    IncidentUpdated,
    MetricSampleBatch,
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunStarted,
    ScaleDecided,
    ServiceHeartbeat,
    SlaBreached,
    SloStatusReported,
    decode,
    specs,
)
from hms_contracts import subjects as s
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from .core.window import MetricWindow

log = logging.getLogger(__name__)


@dataclass
class TimelineEntry:
    at: datetime
    what: str
    detail: str = ""
    output: str = ""


@dataclass
class IncidentView:
    namespace: str
    incident_id: str
    title: str
    severity: str
    cause: str
    opened_at: datetime
    playbook: str | None = None
    status: str = "open"
    revision: int = 0
    closed_at: datetime | None = None
    resolution: str | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    running_step: bool = False

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def status_text(self) -> str:
        """What a reader sees: e.g. 'AUTO-ROLLBACK RUNNING' while a playbook works on it."""
        if self.closed_at is not None:
            return f"CLOSED ({(self.resolution or 'resolved').replace('_', ' ')})".upper()
        if self.status == "mitigating" and self.playbook:
            return f"PLAYBOOK {self.playbook} RUNNING".upper()
        return self.status.upper()

    def summary(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "incident_id": self.incident_id,
            "title": self.title,
            "severity": self.severity,
            "cause": self.cause,
            "status": self.status,
            "status_text": self.status_text(),
            "playbook": self.playbook,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "resolution": self.resolution,
            "revision": self.revision,
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "timeline": [
                {"at": e.at.isoformat(), "what": e.what, "detail": e.detail, "output": e.output}
                for e in self.timeline
            ],
        }


@dataclass
class NamespaceView:
    name: str
    metrics: MetricWindow
    incidents: dict[str, IncidentView] = field(default_factory=dict)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    firing: dict[str, dict[str, Any]] = field(default_factory=dict)
    breaches: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> latest
    scaling: dict[str, dict[str, Any]] = field(default_factory=dict)  # pool/queue -> latest
    slos: dict[str, SloStatusReported] = field(default_factory=dict)  # slo_id -> latest
    #: bumped on every incident change: the API's JSON of the list is kept until it moves
    incidents_version: int = 0
    incidents_json: dict[bool, tuple[int, bytes]] = field(default_factory=dict)

    def incidents_body(self) -> bytes:
        """The incidents as the API sends them, newest first, made once per change."""
        return self._incidents_body(open_only=False)

    def open_incidents_body(self) -> bytes:
        return self._incidents_body(open_only=True)

    def _incidents_body(self, *, open_only: bool) -> bytes:
        cached = self.incidents_json.get(open_only)
        if cached is not None and cached[0] == self.incidents_version:
            return cached[1]
        chosen = [i for i in self.incidents.values() if i.open or not open_only]
        chosen.sort(key=lambda i: i.opened_at, reverse=True)
        body = json.dumps([i.summary() for i in chosen], separators=(",", ":")).encode()
        self.incidents_json[open_only] = (self.incidents_version, body)
        return body

    seen: set[str] = field(default_factory=set)
    seen_order: deque[str] = field(default_factory=deque)


METRICS_TELL_S = 0.5
SEEN_MAX = 200_000

Listener = asyncio.Queue[tuple[str, dict[str, Any]]]

#: streams projected, and from where each is read
_FEEDS: tuple[tuple[str, str], ...] = (
    (specs.INCIDENTS.name, ">"),
    (specs.ALERTS.name, ">"),
    (specs.JOB_EVENTS.name, ">"),
    (specs.SCALE.name, ">"),
    (specs.SLOS.name, ">"),
    (specs.METRICS.name, ">"),
)


class Projection:
    """The namespaces' recent state, fed by ordered consumers, told to listeners."""

    def __init__(self, window_s: float = 3600.0, max_points: int = 20_000) -> None:
        self.window_s = window_s
        self.max_points = max_points
        self.namespaces: dict[str, NamespaceView] = {}
        self.services: dict[tuple[str, str], ServiceHeartbeat] = {}
        self.listeners: dict[str, set[Listener]] = {}
        self._subs: list[Subscription] = []
        self._waiting: set[asyncio.Task[None]] = set()
        self._metrics_told: dict[str, float] = {}
        #: told every new event after it was folded in (webhooks)
        self.observers: list[Callable[[BusEvent], None]] = []

    def ns(self, name: str) -> NamespaceView:
        view = self.namespaces.get(name)
        if view is None:
            view = self.namespaces[name] = NamespaceView(
                name, MetricWindow(self.window_s, self.max_points)
            )
        return view

    # --- listeners (server-sent events) ---------------------------------------------------

    def listen(self, namespace: str) -> Listener:
        queue: Listener = asyncio.Queue(maxsize=1000)
        self.listeners.setdefault(namespace, set()).add(queue)
        return queue

    def unlisten(self, namespace: str, queue: Listener) -> None:
        self.listeners.get(namespace, set()).discard(queue)

    def _tell(self, namespace: str, kind: str, data: dict[str, Any]) -> None:
        for queue in list(self.listeners.get(namespace, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck page misses updates
                queue.put_nowait((kind, data))

    # --- feeding ------------------------------------------------------------------------------

    async def start(self, nc: Client) -> None:
        """Follow every feed; one whose stream does not exist yet (its owner has not started)
        is followed from when it appears."""
        for stream, subject in _FEEDS:
            if not await self._follow(nc, stream, subject):
                log.warning("stream %s does not exist yet; following it once it does", stream)
                task = asyncio.create_task(self._follow_later(nc, stream, subject))
                self._waiting.add(task)
                task.add_done_callback(self._waiting.discard)
        self._subs.append(await nc.subscribe(s.HEARTBEAT.wildcard(), cb=self._on_msg))

    async def _follow(self, nc: Client, stream: str, subject: str) -> bool:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        if stream == specs.METRICS.name:
            since = datetime.now(UTC) - timedelta(seconds=self.window_s)
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=since,
            )
        try:
            sub = await nc.jetstream().subscribe(
                subject,
                stream=stream,
                cb=self._on_msg,
                ordered_consumer=True,
                config=config,
                pending_msgs_limit=100_000,
            )
        except NotFoundError:
            return False
        self._subs.append(sub)
        return True

    async def _follow_later(self, nc: Client, stream: str, subject: str) -> None:
        while True:
            await asyncio.sleep(2.0)  # the owner creates it when it starts: poll, cheaply
            if await self._follow(nc, stream, subject):
                return

    async def stop(self) -> None:
        for task in list(self._waiting):
            task.cancel()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = decode(msg.subject, msg.data)
        except Exception as exc:  # not ours to dead-letter: the owner's consumer does
            log.debug("skipping %s: %s", msg.subject, exc)
            return
        self.apply(event)

    def apply(self, event: BusEvent) -> None:
        """Fold one event into the picture and tell the namespace's listeners."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return
        if isinstance(event, ServiceHeartbeat):
            self.services[(event.service, event.instance_id)] = event
            return
        view = self.ns(event.namespace)
        if not isinstance(event, MetricSampleBatch):
            if event.event_id in view.seen:
                return
            view.seen.add(event.event_id)
            view.seen_order.append(event.event_id)
            if len(view.seen_order) > SEEN_MAX:  # JetStream dedupes too; this bounds memory
                view.seen.discard(view.seen_order.popleft())
        told = handler(view, event)
        if told is not None and told[0] == "incident":
            view.incidents_version += 1
        if told is not None and isinstance(event, MetricSampleBatch):
            # batches come many a second: pages hear "metrics changed" at most twice a second
            now = time.monotonic()
            if now - self._metrics_told.get(event.namespace, 0.0) < METRICS_TELL_S:
                told = None
            else:
                self._metrics_told[event.namespace] = now
        if told is not None:
            self._tell(event.namespace, *told)
        for observer in self.observers:
            observer(event)


Told = tuple[str, dict[str, Any]] | None


def _metrics(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, MetricSampleBatch)
    for sample in e.samples:
        view.metrics.add(
            sample.name, sample.value, sample.observed_at.timestamp(), sample.unit, sample.labels
        )
    return ("metrics", {"names": sorted({x.name for x in e.samples})})


def _opened(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, IncidentOpened)
    inc = view.incidents.get(e.incident_id)
    if inc is None:
        inc = view.incidents[e.incident_id] = IncidentView(
            e.namespace, e.incident_id, e.title, e.severity, e.cause, e.occurred_at, e.playbook
        )
    inc.timeline.append(TimelineEntry(e.occurred_at, "opened", f"{e.title} ({e.cause})"))
    return ("incident", inc.summary())


def _incident(view: NamespaceView, incident_id: str, e: BusEvent) -> IncidentView:
    inc = view.incidents.get(incident_id)
    if inc is None:  # its opening is older than the stream keeps
        inc = view.incidents[incident_id] = IncidentView(
            e.namespace, incident_id, incident_id, "warning", "alert", e.occurred_at
        )
    return inc


def _updated(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, IncidentUpdated)
    inc = _incident(view, e.incident_id, e)
    if e.revision >= inc.revision:
        inc.status, inc.severity, inc.revision = e.status, e.severity, e.revision
    note = f"{e.status} by {e.actor}" + (f": {e.note}" if e.note else "")
    inc.timeline.append(TimelineEntry(e.occurred_at, "updated", note))
    return ("incident", inc.summary())


def _step(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, IncidentStepRan)
    inc = _incident(view, e.incident_id, e)
    what = f"step {e.step_index + 1} of {e.playbook}: {e.status}"
    inc.timeline.append(TimelineEntry(e.occurred_at, what, " ".join(e.argv), e.output))
    return ("incident", inc.summary())


def _escalated(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, IncidentEscalated)
    inc = _incident(view, e.incident_id, e)
    detail = f"level {e.level} by {e.channel} to {e.target}"
    inc.timeline.append(TimelineEntry(e.occurred_at, "escalated", detail))
    return ("incident", inc.summary())


def _closed(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, IncidentClosed)
    inc = _incident(view, e.incident_id, e)
    inc.closed_at, inc.resolution = e.occurred_at, e.resolution
    detail = f"{e.resolution} by {e.closed_by}" + (f": {e.summary}" if e.summary else "")
    inc.timeline.append(TimelineEntry(e.occurred_at, "closed", detail))
    return ("incident", inc.summary())


def _alert(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, AlertFiring | AlertResolved)
    row = {
        "state": e.event_type,
        "rule_id": e.rule_id,
        "metric": e.metric,
        "summary": e.summary,
        "severity": e.severity,
        "value": e.value,
        "at": e.occurred_at.isoformat(),
        "fingerprint": e.fingerprint,
    }
    view.alerts.appendleft(row)
    if isinstance(e, AlertFiring):
        view.firing[e.fingerprint] = row
    else:
        view.firing.pop(e.fingerprint, None)
    return ("alert", row)


def _breach(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, SlaBreached)
    row = {
        "reason": e.reason,
        "job_id": e.job_id,
        "run_id": e.run_id,
        "slo_id": e.slo_id,
        "detail": e.detail,
        "severity": e.severity,
        "at": e.occurred_at.isoformat(),
        "event_id": e.event_id,
    }
    view.breaches.appendleft(row)
    return ("breach", row)


def _run(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, RunStarted | RunProgressed | RunCompleted | RunFailed | RunDeadLettered)
    row = view.runs.setdefault(e.run_id, {"run_id": e.run_id, "job_id": e.job_id})
    row.update(queue=e.queue, state=e.event_type, at=e.occurred_at.isoformat())
    if isinstance(e, RunFailed):
        row["error"] = e.error[:500]
    if len(view.runs) > 2000:
        for key in list(view.runs)[:500]:
            view.runs.pop(key, None)
    return ("run", dict(row))


def _scale(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, ScaleDecided)
    row = {
        "pool": e.pool,
        "consumer": e.consumer,
        "backend": e.backend,
        "action": e.action,
        "current": e.current,
        "desired": e.desired,
        "backlog": e.backlog,
        "degraded": e.degraded,
        "reason": e.reason,
        "at": e.occurred_at.isoformat(),
    }
    view.scaling[e.pool] = row
    return ("scale", row)


def _slo(view: NamespaceView, e: BusEvent) -> Told:
    assert isinstance(e, SloStatusReported)
    known = view.slos.get(e.slo_id)
    if known is not None and known.occurred_at > e.occurred_at:
        return None
    view.slos[e.slo_id] = e
    return ("slo", {"slo_id": e.slo_id, "status": e.status, "summary": e.summary})


_HANDLERS: dict[type[BusEvent], Callable[[NamespaceView, BusEvent], Told]] = {
    MetricSampleBatch: _metrics,
    IncidentOpened: _opened,
    IncidentUpdated: _updated,
    IncidentStepRan: _step,
    IncidentEscalated: _escalated,
    IncidentClosed: _closed,
    AlertFiring: _alert,
    AlertResolved: _alert,
    SlaBreached: _breach,
    RunStarted: _run,
    RunProgressed: _run,
    RunCompleted: _run,
    RunFailed: _run,
    RunDeadLettered: _run,
    ScaleDecided: _scale,
    SloStatusReported: _slo,
    ServiceHeartbeat: lambda view, e: None,
}
