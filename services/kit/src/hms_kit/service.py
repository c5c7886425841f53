"""The service runner: everything a service process needs around its handlers.

``ServiceKit(name, settings, version=...)`` builds the FastStream broker (reconnect forever,
per-service inbox, credentials, telemetry, Prometheus and dead-letter middlewares) and the
FastStream app whose hooks connect, provision what the service owns, serve ``/healthz`` and
``/metrics``, heartbeat into the registry, hold the singleton lease, run the service's
background tasks, and drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from faststream import FastStream
from faststream.nats import NatsBroker, NatsRouter
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.nats.security import NatsCredentials, NatsUserPassword
from faststream.security import BaseSecurity
from hms_contracts import specs, subjects, topology
from hms_contracts.base import SYSTEM_NAMESPACE
from hms_contracts.events import ServiceHeartbeat
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from .errors import KitError
from .http import HealthServer
from .lease import Lease
from .logs import configure_logging
from .metrics import KitMetrics
from .middleware import DeadLetterMiddleware
from .provision import provision, provision_shared
from .registry import beat_forever, deregister
from .settings import ServiceSettings, settings_error
from .telemetry import tracer_provider

log = logging.getLogger(__name__)

Task = Callable[["ServiceKit"], Awaitable[None]]


class ServiceKit:
    """Builds and runs one service process. Handlers live in routers; work loops in tasks."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        version: str,
        routers: tuple[NatsRouter, ...] = (),
        tasks: tuple[Task, ...] = (),
        leader_tasks: tuple[Task, ...] = (),
        lease_bucket: specs.KVSpec = specs.LEASES,
        consumers: tuple[specs.ConsumerSpec, ...] | None = None,
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
        self.tasks = tasks
        self.leader_tasks = leader_tasks
        self.lease_bucket = lease_bucket
        self.inbox_prefix = subjects.inbox_prefix(name)
        self.health = HealthServer(self.metrics.registry, self._probe)
        self.leader: bool | None = None if not self.spec.singleton else False
        self.ready = False
        self.draining = False
        self._bg: list[asyncio.Task[None]] = []
        self._leader_bg: list[asyncio.Task[None]] = []
        self._lease: Lease | None = None
        configure_logging(name, self.instance_id, fmt=settings.log_format, level=settings.log_level)
        self.tracer_provider = tracer_provider(
            name, version, self.instance_id, settings.otlp_endpoint
        )
        self.broker = NatsBroker(
            servers=[u.strip() for u in settings.nats_url.split(",") if u.strip()],
            security=self._security(),
            name=f"hms-{name}:{self.instance_id}",
            inbox_prefix=self.inbox_prefix,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # reconnect forever
            reconnect_time_wait=1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            graceful_timeout=settings.drain_timeout_s,
            middlewares=(
                NatsTelemetryMiddleware(tracer_provider=self.tracer_provider),
                NatsPrometheusMiddleware(registry=self.metrics.registry, app_name=f"hms-{name}"),
                DeadLetterMiddleware.factory(self),
            ),
            logger=logging.getLogger(f"hms_{name.replace('-', '_')}.broker"),
            # FastStream's per-message access log costs as much as the handler: debug only
            log_level=logging.DEBUG,
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

    # --- connection -----------------------------------------------------------------------

    def _security(self) -> BaseSecurity | None:
        s = self.settings
        if s.nats_creds_file is not None:
            return NatsCredentials(str(s.nats_creds_file))
        if s.nats_user:
            password = s.nats_password.get_secret_value() if s.nats_password else ""
            return NatsUserPassword(s.nats_user, password)
        return None

    @property
    def nc(self) -> Client:
        """The underlying nats-py connection (for raw hot paths and JetStream)."""
        return self.broker.connection

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    async def _on_error(self, err: Exception) -> None:
        text = str(err).lower()
        if "permissions violation" in text:
            self.metrics.permission_violations.inc()
            self.metrics.nats_errors.labels(kind="permission").inc()
            log.error("NATS refused an operation: %s", err)
        else:
            self.metrics.nats_errors.labels(kind=type(err).__name__).inc()
            log.warning("NATS error: %r", err)

    async def _on_disconnected(self) -> None:
        self.metrics.connected.set(0)
        if not self.draining:
            log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self.metrics.connected.set(1)
        self.metrics.reconnects.inc()
        log.info("reconnected to NATS")

    async def _connect(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.broker.connect()
                self.metrics.connected.set(1)
                return
            except Exception as exc:  # the server may come up after us: keep trying
                log.warning("cannot reach NATS at %s (%s); retrying", self.settings.nats_url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- lifecycle hooks ------------------------------------------------------------------

    async def _on_startup(self) -> None:
        await self.health.start(self.settings.http_host, self.settings.http_port)
        log.info("%s %s serving /healthz on %s", self.name, self.version, self.health.url)
        await self._connect()
        if self._security() is None:
            # a server without authorization (development, tests): nobody holds a privilege,
            # so the service sets up the shared streams and buckets itself, as the admin would
            await provision_shared(self.js)
        owned = self.spec.owned_streams()
        shared = {s.name for s in specs.SHARED_STREAMS}
        shared |= {specs.kv_stream(b) for b in (specs.SERVICE_REGISTRY, self.lease_bucket)}
        foreign = {c.stream for c in self.consumers} - {s.name for s in owned}
        await self._await_streams(foreign | shared)
        outcomes = await provision(self.js, streams=owned, consumers=self.consumers)
        created = [k for k, v in outcomes.items() if v != "unchanged"]
        log.info("provisioned %d objects (%s new)", len(outcomes), ", ".join(created) or "none")

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
        if self.spec.singleton:
            kv = await self.js.key_value(self.lease_bucket.bucket)
            self._lease = Lease(kv, specs.lease_key(self.name), self.instance_id)
            every = self.settings.lease_renew_s or max(self.lease_bucket.ttl_s / 3, 0.2)
            self._spawn(self._lease.keep(every, self._on_leadership), self._bg)
            await self._first_lease_attempt(self._lease)
        self._spawn(
            beat_forever(self.nc, self.heartbeat, self.settings.heartbeat_interval_s, self.metrics),
            self._bg,
        )
        for task in self.tasks:
            self._spawn(task(self), self._bg)

    async def _first_lease_attempt(self, lease: Lease, timeout_s: float = 2.0) -> None:
        """Until the lease is ours or someone else's, so the first heartbeat tells the truth
        about leadership (``hms-ops status`` fails a singleton with no leader)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not lease.held:
            with contextlib.suppress(Exception):
                if await lease.holder_now() not in (None, self.instance_id):
                    return
            await asyncio.sleep(0.02)

    async def _on_shutdown(self) -> None:
        self.draining = True
        log.info("draining")
        await self._cancel(self._leader_bg)
        await self._cancel(self._bg)
        with contextlib.suppress(Exception):
            if self._lease is not None:
                await self._lease.release()
        with contextlib.suppress(Exception):
            interval = self.settings.heartbeat_interval_s
            await deregister(self.nc, self.name, self.instance_id, interval)

    async def _after_shutdown(self) -> None:
        await self.health.stop()
        self.tracer_provider.shutdown()
        log.info("stopped")

    # --- background work ------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None], into: list[asyncio.Task[None]]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.add_done_callback(self._task_done)
        into.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed; stopping the service", exc_info=task.exception())
            self.app.exit()  # a supervisor restarts us: better than running half-broken

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        tasks.clear()

    async def _on_leadership(self, leader: bool) -> None:
        self.leader = leader
        self.metrics.leader.set(1 if leader else 0)
        if leader:
            log.info("leading: this instance holds the %s lease", self.name)
            for task in self.leader_tasks:
                self._spawn(task(self), self._leader_bg)
        else:
            log.warning("standing by: the %s lease is held elsewhere", self.name)
            await self._cancel(self._leader_bg)

    def heartbeat(self) -> ServiceHeartbeat:
        now = datetime.now(UTC)
        ok, _ = self._probe()
        return ServiceHeartbeat.create(
            occurred_at=now,
            namespace=SYSTEM_NAMESPACE,
            service=self.name,
            version=self.version,
            instance_id=self.instance_id,
            started_at=self.started_at,
            health="ok" if ok else "failing",
            http_url=self.health.url,
            pid=os.getpid(),
            host=socket.gethostname(),
            leader=self.leader,
            interval_s=self.settings.heartbeat_interval_s,
        )

    def _probe(self) -> tuple[bool, dict[str, Any]]:
        try:
            connected = bool(self.broker.connection.is_connected)
        except Exception:  # not connected yet
            connected = False
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
        return connected and self.ready and not self.draining, detail

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and stop."""
        await self.app.run()


def run_service(build: Callable[[], ServiceKit]) -> None:
    """Entry point helper for ``python -m hms_<service>``."""
    try:
        kit = build()
    except KitError as exc:
        raise SystemExit(f"error: {exc}") from None
    except ValidationError as exc:
        raise SystemExit(settings_error(exc)) from None
    asyncio.run(kit.run())
