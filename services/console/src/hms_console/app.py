"""Builds the console service: its settings, resources (projection, tokens, webhooks, the
HTTP server) and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_contracts import specs
from hms_contracts.config import ConfigObject
from hms_kit import Resources, Service, SystemClock
from hms_ops.configstore import ConfigStore, publish_changes

from . import __version__
from .adapters import AdminsOnly, BusAuditLog, BusCommands
from .context import ConfigSource, Console
from .core import SERVICE
from .core.limits import RateLimit
from .handlers import router
from .ports import Commands, OnCall
from .projection import Projection
from .server import ApiServer
from .settings import ConsoleSettings
from .tokens import KvTokens, open_bucket
from .web import create_app
from .webhooks import Backoff, Deliveries

log = logging.getLogger(__name__)

DELIVERIES_FILE = "console-webhooks.sqlite3"


class WatchedConfig(ConfigSource):
    """The config objects the kit's watcher follows for the console."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def objects(self, kind: str, namespace: str | None = None) -> list[ConfigObject]:
        return self.service.config.objects(kind, namespace)


def _settings(service: Service) -> ConsoleSettings:
    if not isinstance(service.settings, ConsoleSettings):
        raise TypeError(f"the console needs ConsoleSettings, not {service.settings!r}")
    return service.settings


class Web:
    """The console's bus-facing parts and its HTTP server, once the serving loop opened them
    (tests and benchmarks wait for ``ready``)."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.console: Console | None = None
        self.api: ApiServer | None = None

    @property
    def url(self) -> str:
        assert self.api is not None, "the console is not serving yet"
        return self.api.url


def resources_with(on_call: OnCall | None = None, commands: Commands | None = None) -> Resources:
    """The console's resources, with the on-call port or the command sender replaced."""

    @asynccontextmanager
    async def opened(service: Service) -> AsyncIterator[Mapping[str, object]]:
        yield {
            "clock": SystemClock(),
            "web": Web(),
            "on_call": on_call or AdminsOnly(),
            "commands": commands,
        }

    return opened


resources = resources_with()
"""What the console uses: the clock, the on-call port, the command sender (default: NATS
requests), and the ``web`` holder the serving loop fills in."""


async def serve(service: Service) -> None:
    """Open the projection, tokens, webhooks and audit log on the live connection, then serve
    the API and dashboard until the service stops."""
    settings = _settings(service)
    context = service.broker.context
    web: Web = context.get("web")
    js = service.js
    kv = await open_bucket(js)
    config_kv = await js.key_value(specs.CONFIG.bucket)
    projection = Projection(settings.metric_window_s, settings.metric_window_points)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    deliveries = Deliveries(
        settings.state_dir / DELIVERIES_FILE,
        settings.webhooks,
        backoff=Backoff(first_s=settings.webhook_backoff_s, attempts=settings.webhook_attempts),
    )
    await deliveries.open()
    projection.observers.append(deliveries.offer)

    def store_for(author: str) -> ConfigStore:
        return ConfigStore(config_kv, author=author, on_change=publish_changes(js))

    console = Console(
        settings=settings,
        tokens=KvTokens(kv),
        projection=projection,
        on_call=context.get("on_call"),
        audit=BusAuditLog(js),
        commands=context.get("commands") or BusCommands(service.nc),
        nc=service.nc,
        js=js,
        config=WatchedConfig(service),
        store_for=store_for,
        deliveries=deliveries,
        ingest_limit=RateLimit(settings.ingest_rate_per_s, settings.ingest_burst),
    )
    server = ApiServer(create_app(console), settings.api_host, settings.api_port)
    following = await console.tokens.follow(service.nc)
    try:
        await projection.start(service.nc)
        await server.start()
        web.console, web.api = console, server
        web.ready.set()
        await asyncio.Event().wait()  # until cancelled by the drain
    finally:
        if following is not None:
            with contextlib.suppress(Exception):
                await following.unsubscribe()
        with contextlib.suppress(Exception):
            await server.stop()
        await projection.stop()
        await deliveries.close()


def create_service(
    settings: ConsoleSettings | None = None,
    *,
    on_call: OnCall | None = None,
    commands: Commands | None = None,
) -> Service:
    """The console process: broker, app, resources (the API server among them), health."""
    return Service(
        SERVICE,
        settings or ConsoleSettings(),
        version=__version__,
        routers=(router,),
        resources=resources_with(on_call, commands),
        loops=(serve,),
    )
