"""Builds the incident-engine service: its settings, resources, leader loop and HTTP webhook,
and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from hms_contracts import AlertFiring, AlertResolved, SlaBreached, decode, specs
from hms_contracts.bus import BusEvent
from hms_contracts.config import ConfigObject
from hms_kit import BatchConsumer, Clock, Delivery, Resources, Service, SystemClock
from nats.aio.msg import Msg

from . import __version__
from .catchup import catch_up_audit
from .commands import serve
from .core import SERVICE, Signal, from_alert, from_breach
from .engine import ConfigSource, Engine
from .escalation import escalate_forever, escalation_resources
from .escalation import router as escalation_router
from .handlers import router
from .metrics import EngineMetrics
from .runner import Runner
from .settings import IncidentEngineSettings
from .store import Store
from .webhook import MOUNT, alertmanager_page

log = logging.getLogger(__name__)

STORE_FILE = "incidents.sqlite3"


def _settings(service: Service) -> IncidentEngineSettings:
    if not isinstance(service.settings, IncidentEngineSettings):
        raise TypeError(
            f"the incident-engine needs IncidentEngineSettings, not {service.settings!r}"
        )
    return service.settings


def resources_with(clock: Clock | None = None, config: ConfigSource | None = None) -> Resources:
    """The incident-engine's resources, with the clock or the config source replaced (tests)."""

    @asynccontextmanager
    async def opened(service: Service) -> AsyncIterator[Mapping[str, object]]:
        settings = _settings(service)
        store = Store(settings.state_dir / STORE_FILE)
        engine = Engine(
            store,
            settings,
            clock or SystemClock(),
            config or WatchedConfig(service),
            lambda: service.js,
            EngineMetrics(service.metrics.registry),
        )
        try:
            async with escalation_resources(service, engine.clock) as escalation:
                yield {
                    "clock": engine.clock,
                    "store": store,
                    "engine": engine,
                    "runner": Runner(engine),
                    # the escalation's acknowledge pages: acknowledge(ns, incident_id, actor, via)
                    "acknowledge": engine.acknowledge,
                    **escalation,
                }
        finally:
            await store.close()

    return opened


resources = resources_with()
"""What the handlers and the leader loop use: the clock, the store (SQLite in the state
directory), the engine, the playbook runner and ``acknowledge``."""


class WatchedConfig:
    """The config objects the service's watcher holds (looked up when asked: the watcher
    starts with the service)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def objects(self, kind: str, namespace: str | None = None) -> list[ConfigObject]:
        return self.service.config.objects(kind, namespace)


def signal_of(event: BusEvent) -> Signal:
    if isinstance(event, AlertFiring | AlertResolved):
        return from_alert(event)
    if isinstance(event, SlaBreached):
        return from_breach(event)
    raise TypeError(f"the incident engine does not take {type(event).__name__}")


def _decode(msg: Msg) -> BusEvent:
    return decode(msg.subject, msg.data)


async def lead(service: Service) -> None:
    """The leader loop: recover runs cut short, then take alerts and breaches, run playbooks,
    publish the outbox and answer requests, until the lease is lost."""
    context = service.broker.context
    engine: Engine = context.get("engine")
    runner: Runner = context.get("runner")
    settings = _settings(service)
    await engine.try_flush()
    await catch_up_audit(service.js, engine.store)
    await runner.recover()

    async def on_batch(batch: Sequence[Delivery[BusEvent]]) -> None:
        await engine.take([signal_of(d.event) for d in batch])

    consumer = BatchConsumer[BusEvent].for_service(
        service,
        specs.INCIDENT_ALERTS,
        BusEvent,
        on_batch,
        batch=settings.batch,
        # a pull waits for a full batch until its timeout: keep it short, for latency
        fetch_timeout=0.05,
        decode=_decode,
    )

    async def audit_config() -> None:
        """Each new version of a silence, playbook or alert rule goes into the audit log."""
        while True:
            for kind in ("silence", "playbook", "alert"):
                try:
                    await engine.audit_config(kind)
                except Exception:
                    log.exception("auditing %s changes failed", kind)
            await asyncio.sleep(2.0)

    subscription = await serve(service.nc, engine)
    service.broker.context.set_global("leading_engine", engine)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(consumer.run())
            tasks.create_task(runner.forever())
            tasks.create_task(engine.flush_forever())
            tasks.create_task(audit_config())
    finally:
        service.broker.context.set_global("leading_engine", None)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


def create_service(
    settings: IncidentEngineSettings | None = None,
    *,
    clock: Clock | None = None,
    config: ConfigSource | None = None,
    lease_bucket: specs.KVSpec = specs.LEASES,
) -> Service:
    """The incident-engine process: broker, app, resources, health, heartbeat, lease, leader
    loop, and the Alertmanager webhook on its HTTP server. ``clock`` and ``config`` replace the
    system clock and the config registry (tests)."""
    settings = settings or IncidentEngineSettings()
    holder: list[Service] = []

    def engine_of() -> Engine | None:
        found = holder[0].broker.context.get("leading_engine") if holder else None
        return found if isinstance(found, Engine) else None

    def token() -> str | None:
        secret = settings.alertmanager_token
        return None if secret is None else secret.get_secret_value()

    service = Service(
        SERVICE,
        settings,
        version=__version__,
        routers=(router, escalation_router),
        resources=resources_with(clock, config),
        leader_loops=(lead, escalate_forever),
        lease_bucket=lease_bucket,
        config_kinds=() if config is not None else None,
    )
    service.health.mount(MOUNT, alertmanager_page(engine_of, token))
    holder.append(service)
    return service
