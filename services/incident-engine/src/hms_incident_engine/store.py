"""The incident engine's SQLite projection: incidents, their alerts and timelines, playbook runs
and steps, the hash-chained audit log (append-only: triggers refuse UPDATE and DELETE) and the
outbox of events to publish.

Every change happens in one transaction with its audit records and its outgoing events (the
outbox), so a crash leaves either all of it or none; the outbox is published afterwards with
deterministic ids (JetStream dedupes a re-publish after a crash).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from hms_contracts import AuditRecorded
from hms_contracts.auditverify import verify_chain
from hms_contracts.bus import BusEvent

log = logging.getLogger(__name__)

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


class Store:
    """The SQLite file, opened on first use. Changes go through :meth:`tx`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._tails: dict[str, AuditRecorded] = {}
        # one connection: transactions take turns (a statement of another task would join one)
        self._lock = asyncio.Lock()

    async def db(self) -> aiosqlite.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path, isolation_level=None)
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """One transaction; committed when the block ends, rolled back on an error."""
        db = await self.db()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            tx = Tx(self, db)
            try:
                yield tx
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
            self._tails.update(tx.tails)

    async def write(self, sql: str, args: Sequence[Any] = ()) -> None:
        """One statement in a transaction of its own."""
        async with self.tx() as tx:
            await tx.execute(sql, args)

    async def tail(self, namespace: str) -> AuditRecorded | None:
        if namespace in self._tails:
            return self._tails[namespace]
        db = await self.db()
        async with db.execute(
            "SELECT body FROM audit WHERE namespace = ? ORDER BY sequence DESC LIMIT 1",
            (namespace,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        # a record that no longer validates (tampered) still anchors the next one
        record = AuditRecorded.model_construct(**json.loads(row["body"]))
        self._tails[namespace] = record
        return record

    # --- reading ----------------------------------------------------------------------------

    async def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        db = await self.db()
        async with db.execute(sql, tuple(args)) as cur:
            return [dict(r) async for r in cur]

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
        return await self.rows("SELECT * FROM outbox ORDER BY seq LIMIT ?", (limit,))

    async def drop_outbox(self, upto: int) -> None:
        await self.write("DELETE FROM outbox WHERE seq <= ?", (upto,))

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
        db = await self.db()
        checked = 0
        async with db.execute(
            "SELECT sequence, hash, body FROM audit WHERE namespace = ? ORDER BY sequence",
            (namespace,),
        ) as cur:
            records: list[dict[str, Any]] = []
            async for row in cur:
                body = json.loads(row["body"])
                if body.get("hash") != row["hash"] or body.get("sequence") != row["sequence"]:
                    body = {**body, "hash": "stored hash differs from the record's"}
                records.append(body)
        checked, broken = verify_chain(records)
        return checked, broken


class Tx:
    """What one transaction may do: changes, audit records, events to publish."""

    def __init__(self, store: Store, db: aiosqlite.Connection) -> None:
        self.store = store
        self.db = db
        self.tails: dict[str, AuditRecorded] = {}

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        cur = await self.db.execute(sql, tuple(args))
        count = cur.rowcount
        await cur.close()
        return count

    async def first_time(self, event_id: str) -> bool:
        """Record a delivery; False when it was handled before."""
        return await self.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event_id,)) == 1

    async def emit(self, event: BusEvent) -> None:
        await self.execute(
            "INSERT INTO outbox (event_id, subject, body) VALUES (?, ?, ?)",
            (event.event_id, event.subject(), event.model_dump_json()),
        )

    async def note(
        self, namespace: str, incident_id: str, at: datetime, what: str, actor: str, text: str
    ) -> None:
        await self.execute(
            "INSERT INTO timeline (namespace, incident_id, at, what, actor, text) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (namespace, incident_id, ts(at), what, actor, text),
        )

    async def audit(
        self,
        namespace: str,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        detail: Mapping[str, str] | None = None,
    ) -> AuditRecorded:
        """Append a record to the namespace's chain (and to the outbox)."""
        previous = self.tails.get(namespace) or await self.store.tail(namespace)
        record = AuditRecorded.chain(
            previous,
            namespace=namespace,
            occurred_at=at,
            actor=actor,
            action=action,
            target=target,
            detail=dict(detail or {}),
        )
        await self.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?)",
            (namespace, record.sequence, record.hash, record.model_dump_json()),
        )
        await self.emit(record)
        self.tails[namespace] = record
        return record
