"""Escalation inside the incident-engine: its resources, its leader loop, its HTTP pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache

from hms_kit import Clock, Service

from .adapters import WatchedDirectory
from .email import EmailSender
from .engine import Directory, EscalationEngine
from .links import LinkSigner, load_or_create_key
from .settings import EscalationSettings
from .store import EscalationStore
from .web import AckPages

STORE_FILE = "escalation.sqlite3"
MOUNT = "/escalation/"


def _settings(service: Service) -> EscalationSettings:
    if not isinstance(service.settings, EscalationSettings):
        raise TypeError(f"escalation needs EscalationSettings, not {type(service.settings)}")
    return service.settings


@asynccontextmanager
async def escalation_resources(
    service: Service, clock: Clock, directory: Directory | None = None
) -> AsyncIterator[Mapping[str, object]]:
    """Opens escalation for ``service``: the engine (``escalation``), the notification sender
    for playbooks (``notify``) and the acknowledge pages on the service's HTTP server. Nothing
    is read or written until first used (the store and the link key open lazily)."""
    settings = _settings(service)
    store = EscalationStore(settings.state_dir / STORE_FILE)

    @cache
    def signer() -> LinkSigner:
        secret = settings.ack_link_secret
        key = secret.get_secret_value().encode() if secret else None
        return LinkSigner(key or load_or_create_key(settings.state_dir))

    engine = EscalationEngine(
        store,
        EmailSender(settings),
        signer,
        directory or WatchedDirectory(service),
        clock,
        settings,
        link_base=lambda: settings.public_url or service.health.url,
        on_degraded=lambda reason: service.report_degraded("escalation", reason),
    )
    pages = AckPages(engine, acknowledge=lambda: service.broker.context.get("acknowledge"))
    service.health.mount(MOUNT, pages)
    try:
        yield {"escalation": engine, "notify": engine.notify}
    finally:
        service.health.unmount(MOUNT)
        await engine.close()
        await store.close()


async def escalate_forever(service: Service) -> None:
    """The leader loop: fires due steps and delivers notifications while this instance holds
    the incident-engine's lease."""
    engine: EscalationEngine = service.broker.context.get("escalation")
    await engine.run(service.js, may_act=lambda: service.lease is None or service.lease.held)
