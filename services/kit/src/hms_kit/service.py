"""A service process: its connection, resources, background loops, leadership and lifecycle.

``Service(name, settings, version=..., routers=..., resources=...)`` wires the pieces together
(connection, leadership and background loops live in their own modules) and hooks them into the
FastStream app: connect, provision what the service owns, open its resources, serve
``/healthz`` and ``/metrics``, heartbeat into the registry, hold the singleton lease, run the
service's loops, and drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from faststream import FastStream
from faststream.nats import NatsRouter
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from hms_contracts import ServiceHeartbeat, specs, subjects, topology
from hms_contracts.base import SYSTEM_NAMESPACE
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from .background import Background
from .configwatch import ConfigWatcher
from .connection import ConnectionEvents, authenticated, build_broker, connect_forever
from .errors import KitError
from .health import Degradations
from .http import HealthServer
from .leadership import Leadership, Loop
from .lease import Lease
from .logs import configure_logging
from .metrics import KitMetrics
from .middleware import DeadLetterMiddleware
from .provision import provision, provision_shared
from .registry import beat_forever, deregister
from .settings import ServiceSettings, settings_error
from .telemetry import tracer_provider

log = logging.getLogger(__name__)

Resources = Callable[["Service"], AbstractAsyncContextManager[Mapping[str, object]]]
"""Opens what a service's handlers use (store, clock, clients) once the service is connected,
yields them by name, and closes them after the last handler ran. Handlers receive each one by
injection: ``store: Annotated[Store, Context("store")]``."""


@asynccontextmanager
async def no_resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
    yield {}


class Service:
    """One service process. Handlers live in routers, resources in ``resources``, work in
    loops (``leader_loops`` run only while this instance holds a singleton's lease)."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        version: str,
        routers: Sequence[NatsRouter] = (),
        resources: Resources = no_resources,
        loops: Sequence[Loop] = (),
        leader_loops: Sequence[Loop] = (),
        lease_bucket: specs.KVSpec = specs.LEASES,
        consumers: tuple[specs.ConsumerSpec, ...] | None = None,
        config_kinds: Sequence[str] | None = None,
    ) -> None:
        self.spec = topology.service(name)
        self.name = name
        self.settings = settings
        self.version = version
        self.instance_id = settings.instance_id
        self.started_at = datetime.now(UTC)
        self._started_mono = time.monotonic()
        self.metrics = KitMetrics()
        self.metrics.info.info({"service": name, "version": version, "instance": self.instance_id})
        #: durable consumers this process provisions (default: those its topology entry owns)
        self.consumers = self.spec.owned_consumers() if consumers is None else consumers
        #: config kinds it follows (default: those its topology entry may read)
        kinds = self.spec.config_kinds if config_kinds is None else tuple(config_kinds)
        foreign_kinds = sorted(set(kinds) - set(self.spec.config_kinds))
        if foreign_kinds:
            raise KitError(
                f"{name} may not follow config kind(s) {', '.join(foreign_kinds)}; its topology "
                f"entry allows {', '.join(self.spec.config_kinds) or 'none'}"
            )
        self.config_kinds = kinds
        self._config: ConfigWatcher | None = None
        self.resources = resources
        self.lease_bucket = lease_bucket
        self.loops = tuple(loops)
        self.inbox_prefix = subjects.inbox_prefix(name)
        #: extra endpoints on the service's HTTP server, beside /healthz and /metrics
        self.health = HealthServer(self.metrics.registry, self._probe)
        self.ready = False
        self.draining = False
        #: what this instance cannot do right now, by part (``/healthz`` shows every reason)
        self.degradations = Degradations(self.metrics)
        self._background = Background(self.stop)
        self._resources = AsyncExitStack()
        self.leadership = (
            Leadership(
                self,
                lease_bucket,
                leader_loops,
                renew_every_s=settings.lease_renew_s,
                metrics=self.metrics,
            )
            if self.spec.singleton
            else None
        )
        self.tracer_provider = tracer_provider(
            name, version, self.instance_id, settings.otlp_endpoint
        )
        self.broker = build_broker(
            name,
            settings,
            inbox_prefix=self.inbox_prefix,
            events=ConnectionEvents(self.metrics, lambda: self.draining),
            middlewares=(
                NatsTelemetryMiddleware(tracer_provider=self.tracer_provider),
                NatsPrometheusMiddleware(registry=self.metrics.registry, app_name=f"hms-{name}"),
                DeadLetterMiddleware.factory(self),
            ),
        )
        for router in routers:
            self.broker.include_router(router)
        self.app = FastStream(
            self.broker,
            logger=logging.getLogger(f"hms_{name.replace('-', '_')}.app"),
            on_startup=[self._on_startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._on_shutdown],
            after_shutdown=[self._after_shutdown],
        )

    # --- what handlers and loops use --------------------------------------------------------

    @property
    def nc(self) -> Client:
        """The underlying nats-py connection (for raw hot paths and JetStream)."""
        return self.broker.connection

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    @property
    def leader(self) -> bool | None:
        """For singletons, whether this instance leads; None for services that scale out."""
        return None if self.leadership is None else self.leadership.leader

    @property
    def lease(self) -> Lease | None:
        """The singleton lease once started (None otherwise). Leader loops check
        ``service.lease.held`` or ``await service.lease.confirm()`` before acting, and may
        carry ``service.lease.fencing_token`` in their effects; they are cancelled when it is
        lost."""
        return None if self.leadership is None else self.leadership.lease

    @property
    def config(self) -> ConfigWatcher:
        """The config objects of the kinds this service follows, current (from startup on).
        Handlers receive it by injection too: ``config: Annotated[ConfigWatcher,
        Context("config")]``."""
        if self._config is None:
            raise KitError(f"{self.name} follows no config kinds, or has not started yet")
        return self._config

    def report_degraded(self, component: str, reason: str | None) -> None:
        """Say that ``component`` works with reduced ability (None: it recovered). The service
        stays up and ready; ``/healthz`` and heartbeats say ``degraded`` with the reasons."""
        if reason is None:
            self.degradations.clear(component)
        else:
            self.degradations.report(component, reason)

    def stop(self) -> None:
        """Ask the service to drain and stop (as SIGTERM does)."""
        self.app.exit()

    # --- lifecycle ----------------------------------------------------------------------------

    async def _on_startup(self) -> None:
        await self.health.start(self.settings.http_host, self.settings.http_port)
        log.info("%s %s serving /healthz on %s", self.name, self.version, self.health.url)
        await connect_forever(self.broker, self.metrics, self.settings.nats_url)
        if not authenticated(self.settings):
            # a server without authorization (development, tests): nobody holds a privilege,
            # so the service sets up the shared streams and buckets itself, as the admin would
            await provision_shared(self.js, replicas=self.settings.stream_replicas)
        owned = self.spec.owned_streams()
        shared = {s.name for s in specs.SHARED_STREAMS}
        shared |= {specs.kv_stream(b) for b in (specs.SERVICE_REGISTRY, self.lease_bucket)}
        if self.config_kinds:
            shared.add(specs.kv_stream(specs.CONFIG))
        foreign = {c.stream for c in self.consumers} - {s.name for s in owned}
        await self._await_streams(foreign | shared)
        outcomes = await provision(
            self.js,
            streams=owned,
            consumers=self.consumers,
            replicas=self.settings.stream_replicas,
        )
        created = [k for k, v in outcomes.items() if v != "unchanged"]
        log.info("provisioned %d objects (%s new)", len(outcomes), ", ".join(created) or "none")
        if self.config_kinds:
            self._config = ConfigWatcher(
                self.nc,
                self.config_kinds,
                metrics=self.metrics,
                on_degraded=lambda reason: self.report_degraded("config", reason),
            )
            await self._config.start()
            self._resources.push_async_callback(self._config.stop)
            self.broker.context.set_global("config", self._config)
            log.info("following config kinds %s", ", ".join(self.config_kinds))
        opened = await self._resources.enter_async_context(self.resources(self))
        for name, resource in opened.items():
            self.broker.context.set_global(name, resource)

    async def _await_streams(self, names: set[str]) -> None:
        """Wait for streams other services own (our consumers sit on them, and creating them
        is their owner's decision) and for the shared streams and buckets, which only the
        stack's admin creates (``hms-ops up``, or ``hms-ops provision`` for a service run
        alone). Until then we are not ready (``/healthz`` says 503)."""
        waited = 0.0
        for name in sorted(names):
            while True:
                try:
                    await self.js.stream_info(name)
                    break
                except NotFoundError:
                    if waited % 5.0 < 0.5:
                        owner = next(
                            (s.name for s in topology.SERVICES if name in s.streams),
                            "the stack's admin: hms-ops up or hms-ops provision",
                        )
                        log.warning("waiting for stream %s (provisioned by %s)", name, owner)
                    await asyncio.sleep(0.5)
                    waited += 0.5

    async def _after_startup(self) -> None:
        self.ready = True
        if self.leadership is not None:
            # before the first heartbeat, so that it tells the truth about leadership
            await self.leadership.start(self.js)
        self._background.spawn(
            beat_forever(
                self.nc,
                self.heartbeat,
                self.settings.heartbeat_interval_s,
                self.metrics,
                self.degradations,
            )
        )
        for loop in self.loops:
            self._background.spawn(loop(self))

    async def _on_shutdown(self) -> None:
        self.draining = True
        log.info("draining")
        with contextlib.suppress(Exception):
            if self.leadership is not None:
                await self.leadership.stop()
        await self._background.cancel()
        with contextlib.suppress(Exception):
            interval = self.settings.heartbeat_interval_s
            await deregister(self.nc, self.name, self.instance_id, interval)

    async def _after_shutdown(self) -> None:
        await self._resources.aclose()
        await self.health.stop()
        self.tracer_provider.shutdown()
        log.info("stopped")

    # --- health -----------------------------------------------------------------------------

    def heartbeat(self) -> ServiceHeartbeat:
        now = datetime.now(UTC)
        health = "failing" if not self._working() else ("degraded" if self.degradations else "ok")
        return ServiceHeartbeat.create(
            occurred_at=now,
            namespace=SYSTEM_NAMESPACE,
            service=self.name,
            version=self.version,
            instance_id=self.instance_id,
            started_at=self.started_at,
            health=health,
            http_url=self.health.url,
            pid=os.getpid(),
            host=socket.gethostname(),
            leader=self.leader,
            interval_s=self.settings.heartbeat_interval_s,
        )

    def _connected(self) -> bool:
        try:
            return bool(self.broker.connection.is_connected)
        except Exception:  # not connected yet
            return False

    def _working(self) -> bool:
        """Up and running, if perhaps degraded."""
        return self._connected() and self.ready and not self.draining

    def _probe(self) -> tuple[bool, dict[str, Any]]:
        connected = self._connected()
        detail: dict[str, Any] = {
            "service": self.name,
            "version": self.version,
            "instance": self.instance_id,
            "connected": connected,
            "ready": self.ready,
            "draining": self.draining,
            "leader": self.leader,
            "uptime_s": round(time.monotonic() - self._started_mono, 3),
        }
        if self.degradations:
            detail["degraded"] = self.degradations.reasons
        return self._working() and not self.degradations.blocking, detail

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and stop."""
        await self.app.run()


def run_service(build: Callable[[], Service]) -> None:
    """Entry point of ``python -m hms_<service>``: build, configure logging, run until stopped."""
    try:
        service = build()
    except KitError as exc:
        raise SystemExit(f"error: {exc}") from None
    except ValidationError as exc:
        raise SystemExit(settings_error(exc)) from None
    s = service.settings
    configure_logging(service.name, service.instance_id, fmt=s.log_format, level=s.log_level)
    asyncio.run(service.run())
