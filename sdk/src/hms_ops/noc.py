"""The agency SDK's core: one namespace's client of the virtual NOC, asynchronous.

``NOC`` (:mod:`hms_ops.sync`) runs this same core on a private event loop for blocking code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hms_contracts import AgencyEvent
from hms_contracts.config import ConfigObject
from hms_contracts.topology import CONFIG_BUCKET
from nats.js.kv import KeyValue
from pydantic import ValidationError

from .configstore import Change, ConfigStore, publish_changes
from .connect import Bus, find_target, local_credential, normalise_namespace, open_bus
from .declare import Declaration
from .errors import ConnectError, InvalidObject
from .feeds import Feed
from .samples import Buffer, Encoder, micros

log = logging.getLogger(__name__)


class AsyncNOC:
    """A namespace's client: register config, push metrics and events, follow incidents."""

    def __init__(
        self,
        bus: Bus,
        *,
        source: str = "sdk",
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        max_buffer: int = 200_000,
        max_in_flight: int = 64,
        ack_timeout: float = 10.0,
        metric_ttl: float | None = None,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch_size {batch_size} must be between 1 and 10000")
        self.bus = bus
        self.namespace = bus.namespace
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.ack_timeout = ack_timeout
        self.buffer = Buffer(
            Encoder(self.namespace, source, metric_ttl), max(max_buffer, batch_size)
        )
        self._js = bus.nc.jetstream(timeout=ack_timeout)
        self._in_flight: list[tuple[asyncio.Future[Any], str, bytes]] = []
        self._max_in_flight = max_in_flight
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._feeds: list[Feed] = []
        self._flusher = asyncio.create_task(self._flush_forever())
        self._closed = False

    @classmethod
    async def open(
        cls,
        namespace: str,
        *,
        url: str | None = None,
        user: str | None = None,
        password: str | None = None,
        creds: str | None = None,
        state_dir: Path | None = None,
        **options: Any,
    ) -> AsyncNOC:
        """Connect as the client of ``namespace`` (see :mod:`hms_ops.connect` for the order in
        which the bus and the credential are found)."""
        ns = normalise_namespace(namespace)
        target = await find_target(
            ns, url=url, user=user, password=password, creds=creds, state_dir=state_dir
        )
        bus = await open_bus(ns, target, name=f"hms-ops-sdk:{ns}")
        return cls(bus, **options)

    # --- config -------------------------------------------------------------------------

    def _store(self) -> ConfigStore:
        js = self.bus.nc.jetstream(timeout=5)
        # built by hand: nats-py's key_value() asks for the stream's info, which a namespace's
        # client may not read (it would list other namespaces' keys)
        kv = KeyValue(
            name=CONFIG_BUCKET,
            stream=f"KV_{CONFIG_BUCKET}",
            pre=f"$KV.{CONFIG_BUCKET}.",
            js=js,
            direct=True,
        )
        return ConfigStore(kv, author=self.bus.who, on_change=publish_changes(js))

    async def register(self, *objects: Declaration) -> list[Change]:
        """Write the declared objects into the config registry (all or none; an unchanged
        object is not written again)."""
        built = [o for d in objects for o in d.objects(self.namespace)]
        what = f"register {', '.join(o.key() for o in built)}"
        changes = await self.bus.guard(self._store().apply(built), what, self.namespace, timeout=10)
        for change in changes:
            log.info("%s %s (generation %d)", change.action, change.key, change.generation)
        return changes

    async def objects(self, kind: str | None = None) -> list[ConfigObject]:
        """The namespace's objects in the config registry (of one kind), by key."""
        what = f"read {self.namespace}.{kind or '*'} from the config registry"
        found = await self.bus.guard(
            self._store().objects(self.namespace, kind), what, self.namespace, timeout=10
        )
        return [stored.object for stored in found]

    # --- metrics ------------------------------------------------------------------------

    def observe(
        self,
        name: str,
        value: float,
        *,
        labels: Mapping[str, str] | None = None,
        unit: str = "1",
        at: datetime | None = None,
    ) -> None:
        """Buffer one sample; it is sent in the background, in batches. Safe from any thread;
        never blocks (a full buffer drops its oldest sample and counts it in ``dropped``)."""
        if self._closed:
            raise ConnectError(f"the client of {self.namespace} is closed")
        self.bus.check_open(f"observe {name}")
        waiting = self.buffer.add(name, value, labels, unit, micros(at) if at else None)
        if waiting == self.batch_size:
            self._poke()

    def observe_many(
        self,
        samples: list[tuple[str, float]],
        *,
        labels: Mapping[str, str] | None = None,
        unit: str = "1",
    ) -> None:
        """Buffer ``(name, value)`` samples sharing labels and unit."""
        for name, value in samples:
            self.observe(name, value, labels=labels, unit=unit)

    @property
    def dropped(self) -> int:
        """Samples dropped because the buffer was full."""
        return self.buffer.dropped

    def _poke(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _flush_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self._send(everything=False)
            except Exception as exc:  # kept in the buffer; flush() reports it
                log.warning("sending metrics failed: %s; will retry", exc)
                await asyncio.sleep(self.flush_interval)

    async def _send(self, *, everything: bool) -> None:
        async with self._lock:
            while len(self.buffer) >= (1 if everything else self.batch_size) or (
                not everything and len(self.buffer) and not self._in_flight
            ):
                event_id, body = self.buffer.encoder.encode(self.buffer.take(self.batch_size))
                await self._publish(event_id, body)
                if not everything and len(self.buffer) < self.batch_size:
                    break
            if everything:
                await self._settle(0)

    async def _publish(self, event_id: str, body: bytes) -> None:
        subject = self.buffer.encoder.subject
        future = await self._js.publish_async(subject, body, headers={"Nats-Msg-Id": event_id})
        self._in_flight.append((future, event_id, body))
        await self._settle(self._max_in_flight)

    async def _settle(self, keep: int) -> None:
        """Wait for acks until at most ``keep`` publishes are in flight; one that failed or
        timed out is sent again (same id: the stream dedupes)."""
        subject = self.buffer.encoder.subject
        while len(self._in_flight) > keep:
            future, event_id, body = self._in_flight[0]
            try:
                await self.bus.guard(
                    asyncio.shield(future),
                    f"publish metrics on {subject}",
                    self.namespace,
                    timeout=self.ack_timeout,
                )
                self._in_flight.pop(0)
            except ConnectError:
                future.cancel()
                self._in_flight[0] = (
                    await self._js.publish_async(subject, body, headers={"Nats-Msg-Id": event_id}),
                    event_id,
                    body,
                )
                raise

    async def flush(self, timeout: float = 30.0) -> None:
        """Send every buffered sample and wait for the stream's acks."""
        deadline = self._loop.time() + timeout
        while True:
            try:
                await asyncio.wait_for(
                    self._send(everything=True), max(0.1, deadline - self._loop.time())
                )
                return
            except ConnectError:
                if self._loop.time() > deadline:
                    raise
            except TimeoutError:
                raise ConnectError(
                    f"flush: {len(self.buffer) + len(self._in_flight)} batches or samples of "
                    f"{self.namespace} not acknowledged within {timeout:g}s"
                ) from None

    # --- events -------------------------------------------------------------------------

    async def publish(
        self, name: str, payload: Mapping[str, Any] | None = None, *, key: str | None = None
    ) -> AgencyEvent:
        """Publish an event of the agency's own (``ops.event.<ns>.<name>``) and wait for the
        stream's ack. ``key`` makes a retry of the same fact a duplicate the stream drops."""
        try:
            event = AgencyEvent.create(
                namespace=self.namespace,
                occurred_at=datetime.now(UTC),
                name=name,
                key=key or secrets.token_hex(12),
                payload=dict(payload or {}),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidObject(f"event {name!r}: {problems}") from None
        await self.bus.guard(
            self._js.publish(
                event.subject(),
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": event.event_id},
            ),
            f"publish {event.subject()}",
            self.namespace,
            timeout=self.ack_timeout,
        )
        return event

    # --- subscriptions ------------------------------------------------------------------

    async def incidents(self, durable: str | None = None, *, start: str = "new") -> Feed:
        """Incident events of the namespace (opened, updated, step ran, escalated, closed).

        Live by default; with ``durable`` a named subscription that resumes after the last
        event handled (``start``: ``new`` or ``all`` the first time)."""
        return await self._feed("incidents", durable, start)

    async def breaches(self, durable: str | None = None, *, start: str = "new") -> Feed:
        """SLA breaches of the namespace (``sla.breach.<ns>``), live or durable."""
        return await self._feed("breaches", durable, start)

    async def _feed(self, kind: str, durable: str | None, start: str) -> Feed:
        if start not in ("new", "all"):
            raise ValueError(f"start {start!r} must be 'new' or 'all'")
        local = self.bus.target.local

        async def declare(name: str) -> None:
            if local is None:
                return
            await local_credential(local, self.namespace, (name,))

        feed = await Feed(self.bus, kind, durable, start).open(declare if local else None)
        self._feeds.append(feed)
        return feed

    # --- lifecycle ----------------------------------------------------------------------

    async def close(self, timeout: float = 30.0) -> None:
        """Send what is buffered, acknowledge what was handled, and disconnect."""
        if self._closed:
            return
        try:
            await self.flush(timeout)
        finally:
            self._closed = True
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
            for feed in self._feeds:
                await feed.close()
            with contextlib.suppress(Exception):
                await self.bus.nc.drain()

    async def __aenter__(self) -> AsyncNOC:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
