"""Following config kinds in the registry: a snapshot, then every change and deletion.

One consumer per kind, filtered to ``$KV.hms_config.*.<kind>.>`` and created with the filtered
form of the create subject, which is all a service's NATS user may create on the bucket. Every
entry is re-validated with today's contract models; an entry that does not validate is
reported (log, metric, dead letter, degraded health) and the last good version of its object
is kept. A consumer that goes quiet (no idle heartbeat: the server restarted) or skips a
message is replaced by a fresh one, whose snapshot is reconciled with what is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hms_contracts import specs
from hms_contracts.config import ConfigEntry, ConfigObject, config_key
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api as js_api

from .deadletter import dead_letter, describe_error
from .metrics import KitMetrics

log = logging.getLogger(__name__)

_PREFIX = f"$KV.{specs.CONFIG.bucket}."
_REMOVED = {"DEL", "PURGE"}
_STREAM = specs.kv_stream(specs.CONFIG)

DegradedReport = Callable[[str | None], None]
"""Told a reason while some entries are unreadable, None once every entry reads again."""


@dataclass
class _Follower:
    """The consumer following one kind, and where its delivery stands."""

    kind: str
    sub: Subscription | None = None
    consumer_seq: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    snapshot: set[str] | None = None  # keys seen since (re)creation, until the snapshot ends
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class ConfigWatcher:
    """The current config objects of some kinds, kept up to date from the registry.

    ``await watcher.start()`` returns once the snapshot is in; read with :meth:`get` and
    :meth:`objects`; ``await watcher.changed()`` waits for the next change.
    """

    def __init__(
        self,
        nc: Client,
        kinds: Iterable[str],
        *,
        metrics: KitMetrics | None = None,
        on_degraded: DegradedReport | None = None,
        heartbeat_s: float = 2.0,
    ) -> None:
        self.nc = nc
        self.kinds = tuple(dict.fromkeys(kinds))
        self.metrics = metrics
        self.on_degraded = on_degraded
        self.heartbeat_s = heartbeat_s
        #: the last good version of every object, by registry key
        self.current: dict[str, ConfigObject] = {}
        #: why each unreadable entry was refused, by registry key
        self.rejected: dict[str, str] = {}
        self._followers = {kind: _Follower(kind) for kind in self.kinds}
        self._changed = asyncio.Condition()
        self._monitor: asyncio.Task[None] | None = None
        self._dead_letters: set[asyncio.Task[None]] = set()

    # --- reading ----------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> ConfigObject | None:
        """The current object, or None."""
        return self.current.get(config_key(namespace, kind, name))

    def objects(self, kind: str, namespace: str | None = None) -> list[ConfigObject]:
        """Every current object of a kind (in one namespace), by key."""
        return [
            obj
            for key, obj in sorted(self.current.items())
            if obj.kind == kind and (namespace is None or obj.namespace == namespace)
        ]

    async def changed(self, timeout: float | None = None) -> None:
        """Wait until the objects change (TimeoutError after ``timeout`` seconds)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait(), timeout)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the consumers and wait until the snapshot of every kind is in."""
        for follower in self._followers.values():
            await self._follow(follower)
        await asyncio.gather(*(f.ready.wait() for f in self._followers.values()))
        self._monitor = asyncio.ensure_future(self._watch_liveness())

    async def stop(self) -> None:
        """Stop following (the consumers lapse on the server once nobody listens)."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for follower in self._followers.values():
            await self._unsubscribe(follower)
        for task in list(self._dead_letters):
            with contextlib.suppress(Exception):
                await task

    async def _follow(self, follower: _Follower) -> None:
        await self._unsubscribe(follower)
        deliver = self.nc.new_inbox()
        follower.consumer_seq = 0
        follower.snapshot = set()
        follower.last_seen = time.monotonic()
        on_msg = functools.partial(self._on_msg, follower)
        follower.sub = await self.nc.subscribe(deliver, cb=on_msg)
        config = js_api.ConsumerConfig(
            # the name puts the filter into the create subject, which permissions bound
            name=f"cfg_{secrets.token_hex(8)}",
            filter_subject=specs.config_kind_subjects(follower.kind),
            deliver_subject=deliver,
            deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=js_api.AckPolicy.NONE,
            idle_heartbeat=self.heartbeat_s,
            inactive_threshold=max(30.0, 5 * self.heartbeat_s),
            mem_storage=True,
            num_replicas=1,
        )
        info = await self.nc.jetstream().add_consumer(_STREAM, config)
        if not info.num_pending:  # nothing to deliver: the snapshot is empty
            await self._snapshot_done(follower)

    async def _unsubscribe(self, follower: _Follower) -> None:
        if follower.sub is not None:
            with contextlib.suppress(Exception):
                await follower.sub.unsubscribe()
            follower.sub = None

    async def _watch_liveness(self) -> None:
        """Replace a consumer that stopped beating (server restart, lost consumer)."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for follower in self._followers.values():
                if time.monotonic() - follower.last_seen > 3 * self.heartbeat_s:
                    log.warning("config watcher for %s went quiet; resubscribing", follower.kind)
                    try:
                        await self._follow(follower)
                    except Exception as exc:  # disconnected: try again next round
                        log.warning("cannot follow config kind %s yet: %s", follower.kind, exc)

    # --- messages ---------------------------------------------------------------------------

    async def _on_msg(self, follower: _Follower, msg: Msg) -> None:
        if follower.last_seen == 0.0:
            return  # waiting to be replaced
        follower.last_seen = time.monotonic()
        if not msg.reply:  # an idle heartbeat
            return
        meta = msg.metadata
        if meta.sequence.consumer != follower.consumer_seq + 1:
            log.warning("config watcher for %s skipped a message; resubscribing", follower.kind)
            follower.last_seen = 0.0  # the liveness check replaces it (not from its own callback)
            return
        follower.consumer_seq = meta.sequence.consumer
        key = msg.subject.removeprefix(_PREFIX)
        if follower.snapshot is not None:
            follower.snapshot.add(key)
        if (msg.headers or {}).get("KV-Operation") in _REMOVED:
            await self._remove(key)
        else:
            await self._apply(key, msg)
        if meta.num_pending == 0 and follower.snapshot is not None:
            await self._snapshot_done(follower)

    async def _apply(self, key: str, msg: Msg) -> None:
        try:
            obj = ConfigEntry.model_validate_json(msg.data).decode()
            if obj.key() != key:
                raise ValueError(f"the entry holds {obj.key()!r}, not an object for its key")
        except ValueError as exc:
            await self._reject(key, msg, describe_error(exc))
            return
        changed = self.current.get(key) != obj
        self.current[key] = obj
        if self.rejected.pop(key, None) is not None:
            self._report()
        if changed:
            await self._notify()

    async def _remove(self, key: str) -> None:
        found = self.current.pop(key, None)
        if self.rejected.pop(key, None) is not None:
            self._report()
        if found is not None:
            await self._notify()

    async def _snapshot_done(self, follower: _Follower) -> None:
        if follower.snapshot is None:
            return
        seen, follower.snapshot = follower.snapshot, None
        # a resubscription's snapshot: what it did not see was deleted meanwhile
        gone = [k for k, o in self.current.items() if o.kind == follower.kind and k not in seen]
        for key in gone:
            await self._remove(key)
        follower.ready.set()

    async def _reject(self, key: str, msg: Msg, reason: str) -> None:
        kept = "keeping the last good version" if key in self.current else "no good version"
        log.error("config entry %s is unreadable (%s); %s", key, reason, kept)
        if self.metrics is not None:
            self.metrics.config_rejected.labels(kind=key.split(".")[1]).inc()
        self.rejected[key] = reason
        self._report()
        # to the dead letters, without holding up the next entry
        task = asyncio.ensure_future(self._dead_letter(msg, f"config entry {key}: {reason}"))
        self._dead_letters.add(task)
        task.add_done_callback(self._dead_letters.discard)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        try:
            await dead_letter(self.nc, msg, reason, self.metrics, term=False)
        except Exception as exc:
            log.error("could not dead-letter %s: %s", msg.subject, exc)

    def _report(self) -> None:
        if self.metrics is not None:
            self.metrics.config_unreadable.set(len(self.rejected))
        if self.on_degraded is None:
            return
        if not self.rejected:
            self.on_degraded(None)
            return
        keys = ", ".join(sorted(self.rejected)[:5])
        more = f" (+{len(self.rejected) - 5} more)" if len(self.rejected) > 5 else ""
        self.on_degraded(f"{len(self.rejected)} config entries unreadable: {keys}{more}")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
