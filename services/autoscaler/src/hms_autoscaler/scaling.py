"""The leader loop: read each pool's inputs, decide, put the decision into effect, tell the bus.

A pool is decided every ``poll_interval`` and at once when new work is published on its stream
(a core subscription on ``job.run.*.*`` wakes the loop; nothing of the message is read), so a
backlog that appears is answered in well under a poll interval. Its backlog is the consumer's
``num_pending + num_ack_pending`` from the JetStream API (the consumer's leader answers). Every
scale, and every change of a pool's health, is a ``ScaleDecided`` on ``ops.scale.<ns>.<pool>``;
an input that cannot be read raises an ``AlertFiring`` (resolved when it reads again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hms_contracts import subjects
from hms_contracts.alerts import AlertFiring, AlertResolved
from hms_contracts.config import ScalePolicy
from hms_contracts.metrics import MetricSampleBatch
from hms_contracts.scaling import ScaleDecided, TriggerReading
from hms_kit import Clock, publish
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from .core import BACKLOG, Decision, Reading, Scaler, floor_of
from .core.series import SeriesWindow
from .overrides import Overrides
from .ports import Backend, BackendError

log = logging.getLogger(__name__)

#: decisions kept per pool for ``hms-ops scale status``
KEPT_DECISIONS = 10
#: the soonest a wake-up decides a pool again after its last decision
WAKE_DEBOUNCE_S = 0.05


class AutoscalerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.decisions = Counter(
            "hms_autoscaler_decisions", "Decisions by action", ["action"], registry=r
        )
        self.workers = Gauge("hms_autoscaler_workers", "Workers per pool", ["pool"], registry=r)
        self.backlog = Gauge("hms_autoscaler_backlog", "Backlog per pool", ["pool"], registry=r)


@dataclass
class Pool:
    """One pool's policy, scaler, metric windows and recent decisions."""

    policy: ScalePolicy
    scaler: Scaler
    windows: list[SeriesWindow]
    next_at: float = 0.0
    last: ScaleDecided | None = None
    published: ScaleDecided | None = None
    history: deque[ScaleDecided] = field(default_factory=lambda: deque(maxlen=KEPT_DECISIONS))
    alert_since: datetime | None = None
    alert_summary: str = ""

    @classmethod
    def of(cls, policy: ScalePolicy) -> Pool:
        return cls(policy, Scaler(policy), [SeriesWindow(t) for t in policy.triggers])


class Autoscaler:
    """Every pool's decisions, put into effect through its backend."""

    def __init__(
        self,
        nc: Client,
        policies: Callable[[], Sequence[ScalePolicy]],
        backends: Mapping[str, Backend],
        clock: Clock,
        *,
        instance_id: str = "autoscaler",
        metrics: AutoscalerMetrics | None = None,
        on_degraded: Callable[[str | None], None] | None = None,
        overrides: Overrides | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.policies = policies
        self.backends = backends
        self.clock = clock
        self.instance_id = instance_id
        self.metrics = metrics or AutoscalerMetrics()
        self.on_degraded = on_degraded
        self.pools: dict[str, Pool] = {}
        self.wake = asyncio.Event()
        self._subs: list[Any] = []
        self.overrides = overrides
        if overrides is not None:
            overrides.listeners.append(self.wake.set)

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Lead until cancelled: adopt the workers, then decide every pool when due."""
        for backend in self.backends.values():
            await backend.adopt()
        self._subs = [
            await self.nc.subscribe(subjects.JOB_RUN.wildcard(), cb=self._on_work),
            await self.nc.subscribe(subjects.METRIC.wildcard(), cb=self._on_metrics),
            await self.nc.subscribe(subjects.SCALE_STATUS, cb=self._on_status),
        ]
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("autoscaler tick failed; retrying")
                await self._wait()
        finally:
            if self.overrides is not None:
                with contextlib.suppress(ValueError):
                    self.overrides.listeners.remove(self.wake.set)
            for sub in self._subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            for backend in self.backends.values():
                with contextlib.suppress(Exception):
                    await backend.close()

    async def _wait(self) -> None:
        now = self.clock.monotonic()
        due = min((p.next_at for p in self.pools.values()), default=now + 1.0)
        delay = max(due - now, 0.0)
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeping = asyncio.ensure_future(self.clock.sleep(delay))
        woken = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()
        if self.wake.is_set():
            self.wake.clear()
            soon = self.clock.monotonic() + WAKE_DEBOUNCE_S
            for pool in self.pools.values():
                pool.next_at = min(pool.next_at, soon)
            await asyncio.sleep(WAKE_DEBOUNCE_S)

    def tick_policies(self) -> None:
        """Follow the policies: a new pool, a changed policy (its history kept), a deleted one."""
        current = {p.pool_id: p for p in self.policies()}
        for key in list(self.pools):
            if key not in current:
                log.info("pool %s: its policy was deleted; its workers are left as they are", key)
                del self.pools[key]
        for key, policy in current.items():
            pool = self.pools.get(key)
            if pool is None:
                self.pools[key] = Pool.of(policy)
            elif pool.policy != policy:
                log.info("pool %s: policy changed", key)
                fresh = Pool.of(policy)
                fresh.last, fresh.published, fresh.history = pool.last, pool.published, pool.history
                fresh.alert_since, fresh.alert_summary = pool.alert_since, pool.alert_summary
                self.pools[key] = fresh

    async def tick(self) -> None:
        """Decide every pool that is due."""
        self.tick_policies()
        if self.overrides is not None:
            for lapsed in self.overrides.prune(self.clock.now().timestamp()):
                log.info(
                    "pool %s: the scale request of incident %s lapsed",
                    lapsed.pool_id,
                    lapsed.incident_id,
                )
        now = self.clock.monotonic()
        due = [p for p in self.pools.values() if p.next_at <= now]
        await asyncio.gather(*(self.decide(p) for p in due))
        self._report()

    async def decide(self, pool: Pool) -> ScaleDecided:
        """Read, decide, effect and announce one pool."""
        policy = pool.policy
        pool.next_at = self.clock.monotonic() + policy.poll_interval_s
        backend = self.backends.get(policy.backend)
        readings, numbers = await self._read(pool)
        errors: list[str] = []
        try:
            if backend is None:
                raise BackendError(f"backend {policy.backend!r} is not configured here")
            current = await backend.workers(policy)
        except BackendError as exc:
            errors.append(str(exc))
            current = pool.last.desired if pool.last else 0
            readings.append(Reading("backend", None, 1.0, error=str(exc)))
        override = None if self.overrides is None else self.overrides.get(policy.pool_id)
        floor = floor_of(override, policy, self.clock.now().timestamp())
        decision = pool.scaler.decide(readings, current, self.clock.monotonic(), floor)
        if backend is not None and decision.desired != current and not errors:
            try:
                await backend.scale(policy, decision.desired)
            except BackendError as exc:
                log.error("pool %s: %s", policy.pool_id, exc)
                # what runs is what ran before: a hold, degraded, saying what was wanted
                decision = Decision(
                    current,
                    current,
                    decision.recommended,
                    decision.demands,
                    f"{decision.reason}; backend failed, holding {current}: {exc}",
                    degraded=True,
                    floor=decision.floor,
                )
        event = self._event(pool, decision, numbers)
        await self._announce(pool, event)
        return event

    async def _read(self, pool: Pool) -> tuple[list[Reading], tuple[int | None, int | None]]:
        p = pool.policy
        target, activation = p.target_backlog_per_worker, p.activation_backlog
        numbers: tuple[int | None, int | None] = (None, None)
        try:
            info = await self.js.consumer_info(p.stream, p.consumer, timeout=2.0)
        except NotFoundError:
            error = f"consumer {p.stream}/{p.consumer} not found"
            backlog = Reading(BACKLOG, None, target, activation, error)
        except Exception as exc:
            error = f"consumer {p.stream}/{p.consumer} unreadable: {exc!r}"
            backlog = Reading(BACKLOG, None, target, activation, error)
        else:
            pending, acking = int(info.num_pending or 0), int(info.num_ack_pending or 0)
            numbers = (pending, acking)
            backlog = Reading(BACKLOG, float(pending + acking), target, activation)
        now = self.clock.now().timestamp()
        return [backlog, *(w.reading(now) for w in pool.windows)], numbers

    def _event(
        self, pool: Pool, d: Decision, numbers: tuple[int | None, int | None]
    ) -> ScaleDecided:
        p = pool.policy
        pending, acking = numbers
        return ScaleDecided.create(
            occurred_at=self.clock.now(),
            namespace=p.namespace,
            pool=p.name,
            consumer=f"{p.stream}/{p.consumer}",
            backend=p.backend,
            action=d.action,
            current=d.current,
            desired=d.desired,
            recommended=d.recommended,
            backlog=None if pending is None or acking is None else pending + acking,
            num_pending=pending,
            num_ack_pending=acking,
            triggers=tuple(
                TriggerReading(
                    trigger=x.reading.trigger,
                    value=x.reading.value,
                    desired=x.desired,
                    active=x.reading.active,
                    error=x.reading.error,
                )
                for x in d.demands
            ),
            degraded=d.degraded,
            reason=d.reason[:1024],
            floor=None if d.floor is None else d.floor.workers,
            incident_id=None if d.floor is None else d.floor.incident_id,
            playbook=None if d.floor is None else d.floor.playbook,
        )

    async def _announce(self, pool: Pool, event: ScaleDecided) -> None:
        """Publish a scale, a change of health, and a pool's first decision; keep the rest."""
        pool.last = event
        self.metrics.decisions.labels(action=event.action).inc()
        self.metrics.workers.labels(pool=pool.policy.pool_id).set(event.desired)
        self.metrics.backlog.labels(pool=pool.policy.pool_id).set(event.backlog or 0)
        before = pool.published
        if event.action == "hold" and before is not None and before.degraded == event.degraded:
            return
        pool.published = event
        pool.history.append(event)
        log.info(
            "pool %s: %s %d -> %d: %s",
            pool.policy.pool_id,
            event.action,
            event.current,
            event.desired,
            event.reason,
        )
        try:
            await publish(self.js, event)
        except Exception as exc:
            log.error("pool %s: could not publish its decision: %r", pool.policy.pool_id, exc)
        await self._alert(pool, event)

    async def _alert(self, pool: Pool, event: ScaleDecided) -> None:
        p = pool.policy
        fingerprint = hashlib.sha256(f"{p.namespace}|autoscaler|{p.name}".encode()).hexdigest()[:16]
        facts: dict[str, Any] = {
            "namespace": p.namespace,
            "rule_id": f"autoscaler.{p.name}",
            "metric": "hms.autoscaler.inputs_unreadable",
            "fingerprint": fingerprint,
            "operator": ">",
            "threshold": 0.0,
            "severity": "warning",
            "labels": {"pool": p.name},
        }
        unread = sum(1 for t in event.triggers if t.value is None)
        if event.degraded and pool.alert_since is None:
            pool.alert_since = event.occurred_at
            pool.alert_summary = f"pool {p.name}: {event.reason}"[:1024]
            alert: AlertFiring | AlertResolved = AlertFiring.create(
                occurred_at=event.occurred_at,
                value=float(max(unread, 1)),
                summary=pool.alert_summary,
                started_at=pool.alert_since,
                **facts,
            )
        elif not event.degraded and pool.alert_since is not None:
            alert = AlertResolved.create(
                occurred_at=event.occurred_at,
                value=0.0,
                summary=f"pool {p.name}: inputs readable again",
                started_at=pool.alert_since,
                resolved_at=event.occurred_at,
                **facts,
            )
            pool.alert_since = None
        else:
            return
        try:
            await publish(self.js, alert)
        except Exception as exc:
            log.error("pool %s: could not publish its alert: %r", p.pool_id, exc)

    def _report(self) -> None:
        if self.on_degraded is None:
            return
        bad = [k for k, p in self.pools.items() if p.last is not None and p.last.degraded]
        self.on_degraded(f"pools holding on unreadable inputs: {', '.join(bad)}" if bad else None)

    # --- subscriptions ----------------------------------------------------------------------

    async def _on_work(self, msg: Msg) -> None:
        self.wake.set()

    async def _on_metrics(self, msg: Msg) -> None:
        ns = subjects.METRIC.namespace_of(msg.subject)
        windows = [w for p in self.pools.values() if p.policy.namespace == ns for w in p.windows]
        if not windows:
            return
        try:
            batch = MetricSampleBatch.model_validate_json(msg.data)
        except ValidationError as exc:
            log.debug("ignoring an invalid metric batch on %s: %s", msg.subject, exc)
            return
        woke = False
        for sample in batch.samples:
            for window in windows:
                if window.matches(sample.name, sample.labels):
                    window.add(sample.observed_at.timestamp(), sample.value)
                    woke = True
        if woke:
            self.wake.set()

    async def _on_status(self, msg: Msg) -> None:
        if msg.reply:
            await msg.respond(self.status_json().encode())

    def status(self) -> dict[str, Any]:
        """Every pool: its policy's bounds, the latest decision and the recent scale events."""
        rows = []
        for key, pool in sorted(self.pools.items()):
            last = pool.last
            rows.append(
                {
                    "pool": key,
                    "namespace": pool.policy.namespace,
                    "name": pool.policy.name,
                    "backend": pool.policy.backend,
                    "min": pool.policy.min,
                    "max": pool.policy.max,
                    "workers": None if last is None else last.desired,
                    "running": None if last is None else last.current,
                    "backlog": None if last is None else last.backlog,
                    "degraded": None if last is None else last.degraded,
                    "last": None if last is None else last.model_dump(mode="json"),
                    "decisions": [e.model_dump(mode="json") for e in pool.history],
                }
            )
        return {"instance": self.instance_id, "pools": rows}

    def status_json(self) -> str:
        return json.dumps(self.status())
