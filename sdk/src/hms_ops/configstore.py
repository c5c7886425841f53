"""The config registry, client side: apply, get, list, delete and the history of config objects.

Objects live in one JetStream KV bucket under ``<namespace>.<kind>.<name>``; each value is a
:class:`~hms_contracts.config.ConfigEntry` (the object's document, its generation, author and
time). Writes are compare-and-swap on the KV revision, so two writers never silently overwrite
each other, and applying an unchanged object writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hms_contracts.config import ConfigEntry, ConfigObject, config_key
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from .errors import ConflictError, InvalidObject

log = logging.getLogger(__name__)

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


class ConfigStore:
    """The registry as seen by one author (a NATS user)."""

    def __init__(self, kv: KeyValue, author: str) -> None:
        self.kv = kv
        self.author = author

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
        """Every current object of a namespace (of one kind), by key."""
        pattern = f"{namespace}.{kind}.>" if kind else f"{namespace}.>"
        # a watcher filtered on the namespace's keys: nats-py's keys() watches the whole
        # bucket, which a namespace's client may not (and should not) read
        watcher = await self.kv.watch(pattern, ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            async for found in watcher:
                if found is None:  # the end of the current values
                    break
                keys.append(found.key)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        current = [await self._get(key) for key in sorted(keys)]
        return [s for s in current if s is not None]

    async def apply(self, objects: Sequence[ConfigObject]) -> list[Change]:
        """Write every object that changed; all of them or, on a failure, none.

        The objects are already valid (they are models). A key given twice is refused. When a
        write fails (a conflict, a lost connection), the writes before it are rolled back to
        the versions they replaced.
        """
        keys = [o.key() for o in objects]
        if len(set(keys)) != len(keys):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise InvalidObject(f"the same object is given more than once: {', '.join(dupes)}")
        plan = [(obj, await self._get(obj.key())) for obj in objects]
        changes: list[Change] = []
        undo: list[tuple[str, Stored | None, int]] = []
        try:
            for obj, current in plan:
                document = obj.document()
                body = {k: v for k, v in document.items() if k != "kind"}
                if current is not None and current.entry.object == body:
                    changes.append(Change(obj.key(), "unchanged", current.entry.generation))
                    continue
                generation = 1 if current is None else current.entry.generation + 1
                entry = ConfigEntry(
                    kind=obj.kind,
                    object=body,
                    generation=generation,
                    author=self.author,
                    written_at=datetime.now(UTC),
                )
                revision = await self._write(obj.key(), entry, current)
                undo.append((obj.key(), current, revision))
                changes.append(
                    Change(obj.key(), "created" if current is None else "updated", generation)
                )
        except BaseException:
            await self._roll_back(undo)
            raise
        return changes

    async def _write(self, key: str, entry: ConfigEntry, current: Stored | None) -> int:
        data = entry.model_dump_json().encode()
        try:
            if current is None:
                return await self.kv.create(key, data)
            return await self.kv.update(key, data, last=current.revision)
        except KeyWrongLastSequenceError:
            raise ConflictError(
                f"{key} was changed by someone else meanwhile; read it again and re-apply"
            ) from None

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
        try:
            await self.kv.delete(key, last=current.revision)
        except KeyWrongLastSequenceError:
            raise ConflictError(f"{key} was changed by someone else meanwhile") from None
        return Change(key, "deleted", current.entry.generation)

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
