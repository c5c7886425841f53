"""Subscriptions of a namespace's client: its incidents and breaches, live or durable.

Live: core subscriptions on the namespace's subjects (what happens while connected). Durable:
JetStream pull consumers under the exact names declared for the namespace, one per feed; an
event handed to the caller is acknowledged when the caller asks for the next one or closes
the connection, so after a restart the feed resumes after the last one handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hms_contracts import BusEvent, decode, topology
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api as js_api
from nats.js.client import JetStreamContext
from nats.js.errors import FetchTimeoutError

from .connect import Bus
from .errors import PermissionDenied

log = logging.getLogger(__name__)

FEEDS = {"incidents": ("incidents", "closed"), "breaches": ("breaches",)}


class Feed:
    """An async iterator of typed events from one or more subjects of the namespace."""

    def __init__(self, bus: Bus, kind: str, durable: str | None, start: str) -> None:
        self.bus = bus
        self.kind = kind
        self.durable = durable
        self.start = start
        self._queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=10_000)
        self._subs: list[Subscription] = []
        self._pulls: list[JetStreamContext.PullSubscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._unacked: Msg | None = None
        self._closed = False

    @property
    def subjects(self) -> list[str]:
        ns = self.bus.namespace
        return [topology.durable_filter(ns, feed) for feed in FEEDS[self.kind]]

    async def open(self, ensure_durable: Callable[[str], Awaitable[None]] | None) -> Feed:
        ns = self.bus.namespace
        if self.durable is None:
            for subject in self.subjects:
                self._subs.append(await self.bus.nc.subscribe(subject, cb=self._queue.put))
            # the server answers a refused SUB with an error before the flush's PONG
            await self.bus.guard(self.bus.nc.flush(), f"subscribe to {self.kind}", ns)
            return self
        try:
            await self._bind()
        except Exception as exc:
            if ensure_durable is None or "permissions violation" not in str(exc).lower():
                raise
            await ensure_durable(self.durable)  # a local stack: declare it, then again
            await self._bind(retry_for=5.0)
        return self

    async def _bind(self, retry_for: float = 0.0) -> None:
        bus, ns = self.bus, self.bus.namespace
        js = bus.nc.jetstream(timeout=5)
        consumers = topology.durable_consumers(ns, self.durable or "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for
        for feed in FEEDS[self.kind]:
            stream, name = consumers[feed]
            config = js_api.ConsumerConfig(
                name=name,
                durable_name=name,
                filter_subject=topology.durable_filter(ns, feed),
                ack_policy=js_api.AckPolicy.EXPLICIT,
                deliver_policy=js_api.DeliverPolicy.NEW
                if self.start == "new"
                else js_api.DeliverPolicy.ALL,
                ack_wait=30.0,
                max_ack_pending=1000,
            )
            what = f"durable {self.durable!r} of {self.kind} in {ns}"
            while True:
                try:
                    await bus.guard(js.add_consumer(stream, config), what, ns)
                    break
                except PermissionDenied as exc:
                    if loop.time() > deadline:
                        raise PermissionDenied(
                            f"{exc}; a durable must be declared for its namespace: "
                            f"`hms-ops namespaces create {ns} --durable {self.durable}`"
                        ) from None
                except Exception:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.2)  # the server is reloading its users
            pull = await js.pull_subscribe_bind(durable=name, stream=stream)
            self._pulls.append(pull)
            self._tasks.append(asyncio.create_task(self._pull(pull)))

    async def _pull(self, pull: JetStreamContext.PullSubscription) -> None:
        while not self._closed:
            try:
                msgs = await pull.fetch(100, timeout=1.0)
            except (FetchTimeoutError, TimeoutError):
                continue
            except Exception as exc:  # reconnecting: try again shortly
                log.debug("fetch failed (%s); again", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._queue.put(msg)

    def __aiter__(self) -> AsyncIterator[BusEvent]:
        return self

    async def __anext__(self) -> BusEvent:
        await self._ack_last()
        while True:
            if self._closed:
                raise StopAsyncIteration
            try:
                msg = await asyncio.wait_for(self._queue.get(), 0.5)
            except TimeoutError:
                continue
            try:
                event = decode(msg.subject, msg.data)
            except ValueError as exc:
                log.warning("ignoring an invalid message on %s: %s", msg.subject, exc)
                if self.durable is not None:
                    await msg.term()
                continue
            if self.durable is not None:
                self._unacked = msg
            return event

    async def _ack_last(self) -> None:
        msg, self._unacked = self._unacked, None
        if msg is not None:
            with contextlib.suppress(Exception):
                await msg.ack()

    async def close(self) -> None:
        """Acknowledge the last event handed out and stop."""
        await self._ack_last()
        self._closed = True
        if self._tasks:
            # a fetch under way ends within its timeout: let it, so what it brings is naked
            # below rather than lost to a cancel (held by the server until the ack wait)
            await asyncio.wait(self._tasks, timeout=1.5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        while self.durable is not None and not self._queue.empty():
            with contextlib.suppress(Exception):  # fetched, never handed out: at once again
                await self._queue.get_nowait().nak()
        for pull in self._pulls:
            with contextlib.suppress(Exception):
                await pull.unsubscribe()

    async def next(self, timeout: float | None = None) -> Any:
        """The next event, waiting at most ``timeout`` seconds (TimeoutError)."""
        return await asyncio.wait_for(self.__anext__(), timeout)
