"""The service's connection to NATS: a FastStream broker that reconnects forever.

The broker carries the service's credentials, receives replies on the service's own inbox
prefix (so least-privilege permissions hold), and runs the kit's middlewares: tracing across
NATS headers, Prometheus, and message fate (dead letters and retries).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fast_depends.pydantic import PydanticSerializer
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials, NatsSecurity, NatsUserPassword
from faststream.security import BaseSecurity

from .metrics import KitMetrics
from .settings import ServiceSettings
from .tls import client_tls

log = logging.getLogger(__name__)


def nats_security(settings: ServiceSettings) -> BaseSecurity | None:
    """A .creds file, a user and password, or nothing (an open server); over TLS when the
    settings name a CA (:func:`hms_kit.tls.client_tls`)."""
    tls = client_tls(settings.nats_tls_ca, settings.nats_tls_cert, settings.nats_tls_key)
    if settings.nats_creds_file is not None:
        return NatsCredentials(str(settings.nats_creds_file), ssl_context=tls)
    if settings.nats_user:
        password = settings.nats_password.get_secret_value() if settings.nats_password else ""
        return NatsUserPassword(settings.nats_user, password, ssl_context=tls)
    if tls is not None:
        return NatsSecurity(ssl_context=tls)
    return None


def authenticated(settings: ServiceSettings) -> bool:
    """Whether the service presents credentials (then the stack's admin provisions the
    shared objects, and the service only waits for them)."""
    return settings.nats_creds_file is not None or bool(settings.nats_user)


class ConnectionEvents:
    """What the client reports about the connection, counted and logged."""

    def __init__(self, metrics: KitMetrics, draining: Callable[[], bool]) -> None:
        self.metrics = metrics
        self.draining = draining

    async def on_error(self, err: Exception) -> None:
        if "permissions violation" in str(err).lower():
            self.metrics.permission_violations.inc()
            self.metrics.nats_errors.labels(kind="permission").inc()
            log.error("NATS refused an operation: %s", err)
        else:
            self.metrics.nats_errors.labels(kind=type(err).__name__).inc()
            log.warning("NATS error: %r", err)

    async def on_disconnected(self) -> None:
        self.metrics.connected.set(0)
        if not self.draining():
            log.warning("disconnected from NATS; reconnecting")

    async def on_reconnected(self) -> None:
        self.metrics.connected.set(1)
        self.metrics.reconnects.inc()
        log.info("reconnected to NATS")


def build_broker(
    name: str,
    settings: ServiceSettings,
    *,
    inbox_prefix: str,
    events: ConnectionEvents,
    middlewares: Sequence[Any],
) -> NatsBroker:
    """The service's broker; nothing connects until the service starts."""
    return NatsBroker(
        servers=[u.strip() for u in settings.nats_url.split(",") if u.strip()],
        security=nats_security(settings),
        name=f"hms-{name}:{settings.instance_id}",
        inbox_prefix=inbox_prefix,
        allow_reconnect=True,
        max_reconnect_attempts=-1,  # reconnect forever
        reconnect_time_wait=1,
        error_cb=events.on_error,
        disconnected_cb=events.on_disconnected,
        reconnected_cb=events.on_reconnected,
        graceful_timeout=settings.drain_timeout_s,
        middlewares=tuple(middlewares),
        logger=logging.getLogger(f"hms_{name.replace('-', '_')}.broker"),
        # FastStream's per-message access log costs as much as the handler: debug only
        log_level=logging.DEBUG,
        # an invalid payload then raises FastDepends' error, a handler's own pydantic error
        # stays pydantic's: the dead-letter middleware tells poison from a handler bug
        serializer=PydanticSerializer(use_fastdepends_errors=True),
    )


async def connect_forever(broker: NatsBroker, metrics: KitMetrics, url: str) -> None:
    """Connect, retrying with backoff: the server may come up after us."""
    delay = 0.2
    while True:
        try:
            await broker.connect()
            metrics.connected.set(1)
            return
        except Exception as exc:
            log.warning("cannot reach NATS at %s (%s); retrying", url, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
