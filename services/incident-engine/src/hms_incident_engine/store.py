"""The incident engine's SQLite projection: incidents, their alerts and timelines, playbook runs
and steps, the hash-chained audit log (append-only: triggers refuse UPDATE and DELETE) and the
outbox of events to publish.

Every change happens in one transaction with its audit records and its outgoing events (the
outbox), so a crash leaves either all of it or none; the outbox is published afterwards with
deterministic ids (JetStream dedupes a re-publish after a crash).

A transaction is a plain function run on the store's one SQLite thread: a batch of alerts is one
hop off the event loop, not one per statement, and the transactions waiting together share one
COMMIT (group commit: one fsync for many).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hms_contracts import AuditRecorded
from hms_contracts.auditverify import verify_chain
from hms_contracts.bus import BusEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS incidents (
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    cause TEXT NOT NULL,
    labels TEXT NOT NULL,
    playbook TEXT,
    revision INTEGER NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at TEXT,
    resolution TEXT,
    acknowledged_by TEXT,
    PRIMARY KEY (namespace, incident_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_incident_per_group
    ON incidents (namespace, group_key) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS members (
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    firing INTEGER NOT NULL,
    PRIMARY KEY (namespace, incident_id, fingerprint)
);
CREATE TABLE IF NOT EXISTS timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    at TEXT NOT NULL,
    what TEXT NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_incident ON timeline (namespace, incident_id, id);
CREATE TABLE IF NOT EXISTS runs (
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    playbook TEXT NOT NULL,
    definition TEXT NOT NULL,
    params TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    PRIMARY KEY (namespace, incident_id)
);
CREATE INDEX IF NOT EXISTS runs_by_target ON runs (namespace, target, started_at);
CREATE TABLE IF NOT EXISTS steps (
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    exit_code INTEGER,
    pgid INTEGER,
    marker TEXT NOT NULL,
    PRIMARY KEY (namespace, incident_id, step_index, attempt)
);
CREATE TABLE IF NOT EXISTS approvals (
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (namespace, incident_id, step_index)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    namespace TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (namespace, sequence)
);
CREATE TRIGGER IF NOT EXISTS audit_refuses_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_refuses_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
"""


def ts(at: datetime) -> str:
    """One fixed width, so that text order is time order in SQL."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class _Job:
    """A function for the store's thread, and where its result goes."""

    __slots__ = ("fn", "future", "loop", "writes")

    def __init__(
        self,
        fn: Callable[[], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        writes: bool,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.writes = writes

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        def set_it() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(set_it)


class Store:
    """The SQLite file, used from one thread of its own: changes go through :meth:`tx` (a
    function given a :class:`Tx`), reads through :meth:`rows`.

    Group commit: the transactions waiting when the thread is free run together, each in a
    savepoint of its own (one that raises is rolled back alone), under one COMMIT (one fsync);
    each caller's result is handed back only after that COMMIT.
    """

    MAX_GROUP = 256

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._tails: dict[str, AuditRecorded] = {}
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: outbox rows up to here are on the bus; deleted with the next group's transaction
        self.published_upto = 0
        self._deleted_upto = 0

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            group = [job]
            while len(group) < self.MAX_GROUP:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this group
                    break
                group.append(more)
            self._run_group(group)
        if self._db is not None:
            self._db.close()
            self._db = None

    def _run_group(self, group: list[_Job]) -> None:
        try:
            db = self._connection()
        except BaseException as exc:
            for job in group:
                job.settle(error=exc)
            return
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        writes = any(job.writes for job in group)
        try:
            if writes:
                db.execute("BEGIN IMMEDIATE")
                upto = self.published_upto
                if upto > self._deleted_upto:
                    db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,))
            for job in group:
                if job.writes:
                    db.execute("SAVEPOINT job")
                try:
                    result = job.fn()
                except BaseException as exc:
                    if job.writes:
                        db.execute("ROLLBACK TO job")
                        db.execute("RELEASE job")
                    outcomes.append((job, None, exc))
                    continue
                if job.writes:
                    db.execute("RELEASE job")
                outcomes.append((job, result, None))
            if writes:
                db.execute("COMMIT")
                self._deleted_upto = max(self._deleted_upto, upto)
        except BaseException as exc:
            log.exception("the incident store could not commit")
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK")
            self._tails.clear()  # some may have moved on in the rolled-back group
            for job in group:
                job.settle(error=exc)
            return
        for job, result, error in outcomes:
            job.settle(result, error)

    async def _on_thread(self, fn: Callable[[], T], *, writes: bool = False) -> T:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="incident-store", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop, writes))
        return await future

    async def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def tx(self, change: Callable[[Tx], T]) -> T:
        """Run ``change`` in a transaction (a savepoint of the group's): its result once
        committed; its exception, with its changes rolled back, when it raises."""

        def run() -> T:
            tx = Tx(self, self._connection())
            result = change(tx)
            # later transactions of the group chain onto these records
            self._tails.update(tx.tails)
            return result

        return await self._on_thread(run, writes=True)

    async def write(self, sql: str, args: Sequence[Any] = ()) -> None:
        """One statement in a transaction of its own."""
        await self.tx(lambda tx: tx.execute(sql, args))

    def tail(self, namespace: str) -> AuditRecorded | None:
        """The namespace's last audit record (on the store's thread)."""
        if namespace in self._tails:
            return self._tails[namespace]
        row = (
            self._connection()
            .execute(
                "SELECT body FROM audit WHERE namespace = ? ORDER BY sequence DESC LIMIT 1",
                (namespace,),
            )
            .fetchone()
        )
        if row is None:
            return None
        # a record that no longer validates (tampered) still anchors the next one
        record = AuditRecorded.model_construct(**json.loads(row["body"]))
        self._tails[namespace] = record
        return record

    async def tail_of(self, namespace: str) -> AuditRecorded | None:
        """The namespace's last audit record."""
        return await self._on_thread(lambda: self.tail(namespace))

    # --- reading ----------------------------------------------------------------------------

    async def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            return [dict(r) for r in self._connection().execute(sql, tuple(args))]

        return await self._on_thread(read)

    async def one(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = await self.rows(sql, args)
        return found[0] if found else None

    async def incident(self, namespace: str, incident_id: str) -> dict[str, Any] | None:
        return await self.one(
            "SELECT * FROM incidents WHERE namespace = ? AND incident_id = ?",
            (namespace, incident_id),
        )

    async def timeline(self, namespace: str, incident_id: str) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT at, what, actor, text FROM timeline WHERE namespace = ? AND incident_id = ? "
            "ORDER BY id",
            (namespace, incident_id),
        )

    async def outbox(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Events not yet on the bus, in order."""
        return await self.rows(
            "SELECT * FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (self.published_upto, limit)
        )

    def published(self, upto: int) -> None:
        """Rows up to ``upto`` are on the bus (a re-publish after a crash dedupes by id)."""
        self.published_upto = max(self.published_upto, upto)

    async def audit_records(
        self, namespace: str, after: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Audit records (as published) of a namespace after a sequence number."""
        rows = await self.rows(
            "SELECT body FROM audit WHERE namespace = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (namespace, after, limit),
        )
        return [json.loads(r["body"]) for r in rows]

    async def verify_audit(self, namespace: str) -> tuple[int, str | None]:
        """Walk the namespace's chain: records checked, and the first broken one (or None)."""
        records: list[dict[str, Any]] = []
        for row in await self.rows(
            "SELECT sequence, hash, body FROM audit WHERE namespace = ? ORDER BY sequence",
            (namespace,),
        ):
            body = json.loads(row["body"])
            if body.get("hash") != row["hash"] or body.get("sequence") != row["sequence"]:
                body = {**body, "hash": "stored hash differs from the record's"}
            records.append(body)
        return verify_chain(records)


class Tx:
    """What one transaction may do (on the store's thread): changes, audit records, events to
    publish."""

    def __init__(self, store: Store, db: sqlite3.Connection) -> None:
        self.store = store
        self.db = db
        self.tails: dict[str, AuditRecorded] = {}

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, tuple(args)).rowcount

    def one(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.db.execute(sql, tuple(args)).fetchone()
        return None if row is None else dict(row)

    def first_time(self, event_id: str) -> bool:
        """Record a delivery; False when it was handled before."""
        return self.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event_id,)) == 1

    def emit(self, event: BusEvent) -> None:
        self.execute(
            "INSERT INTO outbox (event_id, subject, body) VALUES (?, ?, ?)",
            (event.event_id, event.subject(), event.model_dump_json()),
        )

    def note(
        self, namespace: str, incident_id: str, at: datetime, what: str, actor: str, text: str
    ) -> None:
        self.execute(
            "INSERT INTO timeline (namespace, incident_id, at, what, actor, text) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (namespace, incident_id, ts(at), what, actor, text),
        )

    def audit(
        self,
        namespace: str,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        detail: Mapping[str, str] | None = None,
    ) -> AuditRecorded:
        """Append a record to the namespace's chain (and to the outbox)."""
        previous = self.tails.get(namespace) or self.store.tail(namespace)
        record = AuditRecorded.chain(
            previous,
            namespace=namespace,
            occurred_at=at,
            actor=actor,
            action=action,
            target=target,
            detail=dict(detail or {}),
        )
        self.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?)",
            (namespace, record.sequence, record.hash, record.model_dump_json()),
        )
        self.emit(record)
        self.tails[namespace] = record
        return record
