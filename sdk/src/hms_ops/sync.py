"""``NOC``: the blocking face of the SDK, and the door to the asynchronous one.

``NOC.connect(ns)`` runs the asynchronous core (:class:`~hms_ops.noc.AsyncNOC`) on a private
event loop in a daemon thread, so blocking code calls it without any asyncio of its own;
``await NOC.aconnect(ns)`` (or ``async with NOC.aconnect(ns) as noc``) gives the core itself.
One implementation, two faces.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from hms_contracts import AgencyEvent, BusEvent
from hms_contracts.config import ConfigObject

from .configstore import Change
from .declare import Declaration
from .feeds import Feed
from .noc import AsyncNOC

T = TypeVar("T")


class _Loop:
    """A private event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="hms-ops-sdk", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class SyncFeed:
    """A blocking iterator over a feed (``for event in noc.incidents(): ...``)."""

    def __init__(self, feed: Feed, loop: _Loop) -> None:
        self._feed = feed
        self._loop = loop

    def __iter__(self) -> Iterator[BusEvent]:
        return self

    def __next__(self) -> BusEvent:
        try:
            return self._loop.run(self._feed.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def next(self, timeout: float | None = None) -> BusEvent:
        """The next event, waiting at most ``timeout`` seconds (TimeoutError)."""
        event: BusEvent = self._loop.run(self._feed.next(timeout))
        return event

    def close(self) -> None:
        self._loop.run(self._feed.close())


class _Connecting:
    """What ``NOC.aconnect`` returns: await it, or use it with ``async with``."""

    def __init__(self, namespace: str, kwargs: dict[str, Any]) -> None:
        self._open = AsyncNOC.open(namespace, **kwargs)
        self._noc: AsyncNOC | None = None

    def __await__(self) -> Generator[Any, None, AsyncNOC]:
        return self._open.__await__()

    async def __aenter__(self) -> AsyncNOC:
        self._noc = await self._open
        return self._noc

    async def __aexit__(self, *exc: object) -> None:
        if self._noc is not None:
            await self._noc.close()


class NOC:
    """A namespace's client of the virtual NOC (blocking methods)."""

    def __init__(self, core: AsyncNOC, loop: _Loop) -> None:
        self._core = core
        self._loop = loop

    @classmethod
    def connect(cls, namespace: str, **kwargs: Any) -> NOC:
        """Connect as the client of ``namespace`` (``USDS_Unemployment`` and
        ``usds_unemployment`` are the same). Keywords: ``url``, ``user``, ``password``,
        ``creds``, ``state_dir``, and the metric options ``batch_size``, ``flush_interval``,
        ``metric_ttl`` (seconds after which a series pushed by this client expires),
        ``max_buffer``. Raises ConnectError saying why it could not connect."""
        loop = _Loop()
        try:
            core = loop.run(AsyncNOC.open(namespace, **kwargs))
        except BaseException:
            loop.stop()
            raise
        return cls(core, loop)

    @staticmethod
    def aconnect(namespace: str, **kwargs: Any) -> _Connecting:
        """The asynchronous client: ``noc = await NOC.aconnect(ns)`` or
        ``async with NOC.aconnect(ns) as noc``."""
        return _Connecting(namespace, kwargs)

    @property
    def namespace(self) -> str:
        return self._core.namespace

    @property
    def dropped(self) -> int:
        """Samples dropped because the buffer was full."""
        return self._core.dropped

    def register(self, *objects: Declaration) -> list[Change]:
        """Write declared objects (Metric, Alert with its Playbook, Playbook) to the registry."""
        return self._loop.run(self._core.register(*objects))

    def objects(self, kind: str | None = None) -> list[ConfigObject]:
        """The namespace's objects in the config registry (of one kind), by key."""
        return self._loop.run(self._core.objects(kind))

    def observe(
        self,
        name: str,
        value: float,
        *,
        labels: Mapping[str, str] | None = None,
        unit: str = "1",
        at: datetime | None = None,
    ) -> None:
        """Buffer one sample (never blocks; sent in batches in the background)."""
        self._core.observe(name, value, labels=labels, unit=unit, at=at)

    def observe_many(
        self,
        samples: list[tuple[str, float]],
        *,
        labels: Mapping[str, str] | None = None,
        unit: str = "1",
    ) -> None:
        """Buffer ``(name, value)`` samples sharing labels and unit."""
        self._core.observe_many(samples, labels=labels, unit=unit)

    def flush(self, timeout: float = 30.0) -> None:
        """Send every buffered sample and wait for the acks."""
        self._loop.run(self._core.flush(timeout))

    def publish(
        self, name: str, payload: Mapping[str, Any] | None = None, *, key: str | None = None
    ) -> AgencyEvent:
        """Publish an event of the agency's own and wait for the ack."""
        return self._loop.run(self._core.publish(name, payload, key=key))

    def incidents(self, durable: str | None = None, *, start: str = "new") -> SyncFeed:
        """Incident events of the namespace, live or (``durable``) resuming."""
        return SyncFeed(self._loop.run(self._core.incidents(durable, start=start)), self._loop)

    def breaches(self, durable: str | None = None, *, start: str = "new") -> SyncFeed:
        """SLA breaches of the namespace, live or durable."""
        return SyncFeed(self._loop.run(self._core.breaches(durable, start=start)), self._loop)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is buffered, acknowledge what was handled, disconnect."""
        try:
            self._loop.run(self._core.close(timeout))
        finally:
            self._loop.stop()

    def __enter__(self) -> NOC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
