"""The config registry, client side: apply, get, list, delete and the history of config objects.

Objects live in one JetStream KV bucket under ``<namespace>.<kind>.<name>``; each value is a
:class:`~hms_contracts.config.ConfigEntry` (the object's document, its generation, author and
time). Writes are compare-and-swap on the KV revision, so two writers never silently overwrite
each other, and applying an unchanged object writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from hms_contracts import ConfigChanged
from hms_contracts.config import ConfigEntry, ConfigObject, config_key, split_key
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from .errors import ConflictError, InvalidObject

log = logging.getLogger(__name__)

T = TypeVar("T")

#: requests to the server in flight at once (pipelined: one round trip each, acks together)
_IN_FLIGHT = 256
#: JetStream's error code for a compare-and-swap write whose expected revision is stale
_WRONG_LAST_SEQUENCE = 10071

Action = Literal["created", "updated", "unchanged", "deleted"]


@dataclass(frozen=True)
class Stored:
    """One version of an object as the registry holds it."""

    key: str
    entry: ConfigEntry
    revision: int  # the KV revision: what compare-and-swap writes check

    @property
    def object(self) -> ConfigObject:
        return self.entry.decode()


@dataclass(frozen=True)
class Change:
    """What applying or deleting did to one key."""

    key: str
    action: Action
    generation: int
    revision: int = 0  # the KV revision written (0 when nothing was)

    def event(self, author: str, at: datetime | None = None) -> ConfigChanged | None:
        """The audit event of this change, or None when nothing was written."""
        if self.action == "unchanged":
            return None
        namespace, kind, name = split_key(self.key)
        return ConfigChanged.create(
            namespace=namespace,
            occurred_at=at or datetime.now(UTC),
            key=self.key,
            kind=kind,
            name=name,
            action="deleted" if self.action == "deleted" else "applied",
            generation=self.generation,
            revision=self.revision,
            author=author,
        )


ChangeHook = Callable[[Sequence[ConfigChanged]], Awaitable[None]]
"""Told the audit events of every write that stayed (after an apply or a delete)."""


def publish_changes(js: JetStreamContext) -> ChangeHook:
    """A hook that publishes each change on ``ops.config.<ns>.<kind>`` (stream
    CONFIG_CHANGES) with its deterministic id, acks awaited together."""

    async def publish(events: Sequence[ConfigChanged]) -> None:
        sends = [
            js.publish(
                e.subject(), e.model_dump_json().encode(), headers={"Nats-Msg-Id": e.event_id}
            )
            for e in events
        ]
        await asyncio.gather(*sends)

    return publish


class ConfigStore:
    """The registry as seen by one author (a NATS user).

    ``on_change`` (e.g. :func:`publish_changes`) is told the audit events of the writes once
    they stand: an apply that rolled back reports nothing.
    """

    def __init__(self, kv: KeyValue, author: str, *, on_change: ChangeHook | None = None) -> None:
        self.kv = kv
        self.author = author
        self.on_change = on_change

    async def _report(self, changes: Sequence[Change]) -> None:
        if self.on_change is None:
            return
        now = datetime.now(UTC)
        events = [e for e in (c.event(self.author, now) for c in changes) if e is not None]
        if events:
            await self.on_change(events)

    async def get(self, namespace: str, kind: str, name: str) -> Stored | None:
        """The current version of an object, or None."""
        return await self._get(config_key(namespace, kind, name))

    async def _get(self, key: str) -> Stored | None:
        try:
            found = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        if found.value is None or found.revision is None:
            return None
        return Stored(key, ConfigEntry.model_validate_json(found.value), found.revision)

    async def objects(self, namespace: str, kind: str | None = None) -> list[Stored]:
        """Every current object of a namespace (of one kind), by key.

        Read through a short-lived consumer whose name puts the key filter into the create
        subject: the one form a namespace's client is allowed, for its own keys only (nats-py's
        ``keys()`` and ``watch()`` ask for the whole bucket).
        """
        pattern = f"{self.kv._pre}{namespace}.{kind}.>" if kind else f"{self.kv._pre}{namespace}.>"
        nc = self.kv._js._nc
        inbox = nc.new_inbox()
        found: dict[str, Stored] = {}
        done = asyncio.Event()
        expected = 0

        async def on_msg(msg: Msg) -> None:
            meta = msg.metadata
            key = msg.subject.removeprefix(self.kv._pre)
            if msg.headers and msg.headers.get("KV-Operation") in ("DEL", "PURGE"):
                found.pop(key, None)
            elif msg.data:
                entry = ConfigEntry.model_validate_json(msg.data)
                found[key] = Stored(key, entry, meta.sequence.stream)
            if meta.num_pending == 0:
                done.set()

        sub = await nc.subscribe(inbox, cb=on_msg)
        try:
            info = await self.kv._js.add_consumer(
                self.kv._stream,
                ConsumerConfig(
                    name=f"get_{secrets.token_hex(8)}",
                    filter_subject=pattern,
                    deliver_subject=inbox,
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=5.0,  # it lapses on its own: no delete right needed
                    mem_storage=True,
                    num_replicas=1,
                ),
            )
            expected = info.num_pending or 0
            if expected:
                await asyncio.wait_for(done.wait(), timeout=10)
        finally:
            await sub.unsubscribe()
        return [found[key] for key in sorted(found)]

    async def apply(self, objects: Sequence[ConfigObject]) -> list[Change]:
        """Write every object that changed; all of them or, on a failure, none.

        The objects are already valid (they are models). A key given twice is refused. Writes
        are compare-and-swap on each key's last revision and pipelined (acks awaited
        together); when any fails (a conflict, a lost connection), those that succeeded are
        rolled back to the versions they replaced.
        """
        keys = [o.key() for o in objects]
        if len(set(keys)) != len(keys):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise InvalidObject(f"the same object is given more than once: {', '.join(dupes)}")
        found = await self._gather([self._last(key) for key in keys])
        changes: list[Change] = []
        writes: list[tuple[int, str, bytes, int]] = []  # change index, key, value, last
        now = datetime.now(UTC)
        for obj, (current, last) in zip(objects, found, strict=True):
            body = {k: v for k, v in obj.document().items() if k != "kind"}
            if current is not None and current.entry.object == body:
                changes.append(Change(obj.key(), "unchanged", current.entry.generation))
                continue
            generation = 1 if current is None else current.entry.generation + 1
            entry = ConfigEntry(
                kind=obj.kind,
                object=body,
                generation=generation,
                author=self.author,
                written_at=now,
            )
            writes.append((len(changes), obj.key(), entry.model_dump_json().encode(), last))
            action: Action = "created" if current is None else "updated"
            changes.append(Change(obj.key(), action, generation))
        results = await self._gather(
            [self._write(key, data, last) for _, key, data, last in writes], settle=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            undo = [
                (key, found[keys.index(key)][0], r)
                for (_, key, _, _), r in zip(writes, results, strict=True)
                if isinstance(r, int)
            ]
            await self._roll_back(undo)
            raise failures[0]
        for (index, _, _, _), revision in zip(writes, results, strict=True):
            c = changes[index]
            changes[index] = Change(c.key, c.action, c.generation, int(revision))
        await self._report(changes)
        return changes

    async def _gather(self, work: list[Awaitable[T]], *, settle: bool = False) -> list[Any]:
        """Run requests a bounded number at a time (each is a round trip to the server)."""
        limit = asyncio.Semaphore(_IN_FLIGHT)

        async def one(w: Awaitable[T]) -> T:
            async with limit:
                return await w

        return await asyncio.gather(*(one(w) for w in work), return_exceptions=settle)

    async def _last(self, key: str) -> tuple[Stored | None, int]:
        """The current version (None when absent or deleted) and the key's last revision,
        which a compare-and-swap write names (a deletion leaves a marker with its own)."""
        try:
            found = await self.kv.get(key)
        except KeyNotFoundError as exc:
            marker = getattr(exc, "entry", None)
            return None, (marker.revision or 0) if marker is not None else 0
        if found.value is None or found.revision is None:
            return None, found.revision or 0
        return Stored(key, ConfigEntry.model_validate_json(found.value), found.revision), (
            found.revision
        )

    async def _write(self, key: str, data: bytes, last: int) -> int:
        headers = {"Nats-Expected-Last-Subject-Sequence": str(last)}
        try:
            ack = await self.kv._js.publish(self.kv._pre + key, data, headers=headers)
        except BadRequestError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise ConflictError(
                    f"{key} was changed by someone else meanwhile; read it again and re-apply"
                ) from None
            raise
        return ack.seq

    async def _roll_back(self, undo: list[tuple[str, Stored | None, int]]) -> None:
        for key, previous, revision in reversed(undo):
            try:
                if previous is None:
                    await self.kv.delete(key, last=revision)
                else:
                    data = previous.entry.model_dump_json().encode()
                    await self.kv.update(key, data, last=revision)
            except Exception as exc:  # best effort: say what is left behind
                log.error("could not roll back %s (%s); it holds the new version", key, exc)

    async def delete(self, namespace: str, kind: str, name: str) -> Change:
        """Delete an object (its history stays); ``unchanged`` when there was none."""
        key = config_key(namespace, kind, name)
        current = await self._get(key)
        if current is None:
            return Change(key, "unchanged", 0)
        headers = {
            "KV-Operation": "DEL",
            "Nats-Expected-Last-Subject-Sequence": str(current.revision),
        }
        try:
            ack = await self.kv._js.publish(self.kv._pre + key, b"", headers=headers)
        except BadRequestError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise ConflictError(f"{key} was changed by someone else meanwhile") from None
            raise
        change = Change(key, "deleted", current.entry.generation, ack.seq)
        await self._report([change])
        return change

    async def history(self, namespace: str, kind: str, name: str) -> list[Stored]:
        """Every version the bucket still keeps, oldest first (deletions left out)."""
        key = config_key(namespace, kind, name)
        try:
            entries = await self.kv.history(key)
        except (KeyNotFoundError, NoKeysError):
            return []
        return [
            Stored(key, ConfigEntry.model_validate_json(e.value), e.revision)
            for e in entries
            if e.value and e.revision is not None and e.operation is None
        ]
