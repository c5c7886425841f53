"""Escalation's state in the service's SQLite file: escalations, due steps, deliveries, issued
acknowledge links and an outbox of events to publish.

Due times live here, not in memory, so a restarted engine fires every step that fell due while
it was down. Each change is one transaction; the events it implies are written to the outbox in
the same transaction and published afterwards (with their deterministic ids), so none is lost
between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
from hms_contracts.bus import BusEvent
from hms_contracts.config import EscalationPolicy

from .core import Incident, StepAt

_SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    labels TEXT NOT NULL,
    policy TEXT NOT NULL,
    state TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, incident_id)
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    round INTEGER NOT NULL,
    level INTEGER NOT NULL,
    due_at TEXT NOT NULL,
    state TEXT NOT NULL,
    fired_at TEXT,
    UNIQUE (namespace, incident_id, epoch, round, level)
);
CREATE INDEX IF NOT EXISTS steps_due ON steps (state, due_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    level INTEGER,
    targets TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    due_at TEXT NOT NULL,
    next_try_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    last_error TEXT,
    alerted INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    message_id TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_try_at);
CREATE TABLE IF NOT EXISTS links (
    nonce TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    address TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    via TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def _delivery(r: aiosqlite.Row) -> Delivery:
    return Delivery(
        key=r[1],
        namespace=r[2],
        incident_id=r[3],
        level=r[4],
        targets=tuple(json.loads(r[5])),
        subject=r[6],
        body=r[7],
        due_at=from_ts(r[8]),
        id=r[0],
        attempts=r[9],
        alerted=bool(r[10]),
    )


def ts(at: datetime) -> str:
    """One fixed width in UTC, so that text order is time order in SQL."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def from_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Escalation:
    incident: Incident
    policy: EscalationPolicy
    state: str
    epoch: int


@dataclass(frozen=True, slots=True)
class DueStep:
    id: int
    namespace: str
    incident_id: str
    epoch: int
    at: StepAt


@dataclass(frozen=True, slots=True)
class NewDelivery:
    key: str
    namespace: str
    incident_id: str
    level: int | None
    targets: tuple[str, ...]
    subject: str
    body: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery(NewDelivery):
    id: int
    attempts: int
    alerted: bool


@dataclass(frozen=True, slots=True)
class NewLink:
    nonce: str
    namespace: str
    incident_id: str
    address: str
    expires_at: datetime


class EscalationStore:
    """The SQLite file, opened on first use; one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path, isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _write(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[int]:
        """Run ``statements`` in one transaction; the row counts they changed."""
        counts = await self._transaction(statements, all_or_nothing=False)
        assert counts is not None
        return counts

    async def _transaction(
        self, statements: Sequence[tuple[str, Sequence[object]]], *, all_or_nothing: bool
    ) -> list[int] | None:
        # shielded: a caller cancelled mid-way (shutdown) must not leave the connection inside
        # a transaction or cut one in two; the transaction ends either way
        return await asyncio.shield(self._run(statements, all_or_nothing))

    async def _run(
        self, statements: Sequence[tuple[str, Sequence[object]]], all_or_nothing: bool
    ) -> list[int] | None:
        async with self._lock:
            db = await self._conn()
            await db.execute("BEGIN IMMEDIATE")
            try:
                counts = []
                for i, (sql, args) in enumerate(statements):
                    cur = await db.execute(sql, tuple(args))
                    counts.append(cur.rowcount)
                    if i == 0 and all_or_nothing and cur.rowcount != 1:
                        await db.execute("ROLLBACK")
                        return None
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
            return counts

    async def _read(self, sql: str, args: Sequence[object] = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            db = await self._conn()
            async with db.execute(sql, tuple(args)) as cur:
                return list(await cur.fetchall())

    @staticmethod
    def _outbox(events: Sequence[BusEvent]) -> list[tuple[str, Sequence[object]]]:
        return [
            (
                "INSERT OR IGNORE INTO outbox (event_id, subject, data) VALUES (?, ?, ?)",
                (e.event_id, e.subject(), e.model_dump_json()),
            )
            for e in events
        ]

    # --- escalations ------------------------------------------------------------------------

    async def start(self, incident: Incident, policy: EscalationPolicy, first: StepAt) -> bool:
        """Record the escalation and its first step; False when it was already recorded."""
        ns, iid = incident.namespace, incident.incident_id
        added, _ = await self._write(
            [
                (
                    "INSERT OR IGNORE INTO escalations (namespace, incident_id, title, severity, "
                    "opened_at, labels, policy, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'active')",
                    (
                        ns,
                        iid,
                        incident.title,
                        incident.severity,
                        ts(incident.opened_at),
                        json.dumps(dict(incident.labels)),
                        policy.model_dump_json(),
                    ),
                ),
                (
                    "INSERT OR IGNORE INTO steps (namespace, incident_id, epoch, round, level, "
                    "due_at, state) VALUES (?, ?, 0, ?, ?, ?, 'pending')",
                    (ns, iid, first.round, first.level, ts(first.due_at)),
                ),
            ]
        )
        return added == 1

    async def escalation(self, namespace: str, incident_id: str) -> Escalation | None:
        rows = await self._read(
            "SELECT title, severity, opened_at, labels, policy, state, epoch FROM escalations "
            "WHERE namespace = ? AND incident_id = ?",
            (namespace, incident_id),
        )
        if not rows:
            return None
        title, severity, opened, labels, policy, state, epoch = rows[0]
        incident = Incident(
            namespace, incident_id, title, severity, from_ts(opened), json.loads(labels)
        )
        return Escalation(incident, EscalationPolicy.model_validate_json(policy), state, epoch)

    def _stop(self, ns: str, iid: str) -> list[tuple[str, Sequence[object]]]:
        return [
            (
                "UPDATE steps SET state = 'cancelled' WHERE namespace = ? AND incident_id = ? "
                "AND state = 'pending'",
                (ns, iid),
            ),
            (
                "UPDATE deliveries SET state = 'cancelled' WHERE namespace = ? AND "
                "incident_id = ? AND state = 'pending' AND level IS NOT NULL",
                (ns, iid),
            ),
        ]

    async def acknowledge(self, ns: str, iid: str, renotify: datetime | None) -> bool:
        """Stop notifying an active escalation and, with ``renotify``, start it again from
        level 1 then (a new epoch); False when it is not active (already acknowledged)."""
        statements = [
            (
                "UPDATE escalations SET state = 'acknowledged', epoch = epoch + 1 "
                "WHERE namespace = ? AND incident_id = ? AND state = 'active'",
                (ns, iid),
            ),
            *self._stop(ns, iid),
        ]
        if renotify is not None:
            statements.append(
                (
                    "INSERT OR IGNORE INTO steps (namespace, incident_id, epoch, round, level, "
                    "due_at, state) SELECT namespace, incident_id, epoch, 0, 0, ?, 'pending' "
                    "FROM escalations WHERE namespace = ? AND incident_id = ?",
                    (ts(renotify), ns, iid),
                )
            )
        return await self._write_if_first(statements)

    async def _write_if_first(self, statements: list[tuple[str, Sequence[object]]]) -> bool:
        """Run ``statements`` in one transaction only if the first changes a row."""
        return await self._transaction(statements, all_or_nothing=True) is not None

    async def close_incident(self, ns: str, iid: str) -> bool:
        """Stop the escalation for good; False when it was closed already or never started."""
        return await self._write_if_first(
            [
                (
                    "UPDATE escalations SET state = 'closed' WHERE namespace = ? AND "
                    "incident_id = ? AND state != 'closed'",
                    (ns, iid),
                ),
                *self._stop(ns, iid),
            ]
        )

    # --- steps ------------------------------------------------------------------------------

    async def due_steps(self, now: datetime, limit: int = 100) -> list[DueStep]:
        rows = await self._read(
            "SELECT id, namespace, incident_id, epoch, round, level, due_at FROM steps "
            "WHERE state = 'pending' AND due_at <= ? ORDER BY due_at LIMIT ?",
            (ts(now), limit),
        )
        return [DueStep(r[0], r[1], r[2], r[3], StepAt(r[4], r[5], from_ts(r[6]))) for r in rows]

    async def fire(
        self,
        step: DueStep,
        fired_at: datetime,
        deliveries: Sequence[NewDelivery],
        links: Sequence[NewLink],
        following: StepAt | None,
        events: Sequence[BusEvent],
    ) -> bool:
        """Mark ``step`` fired with what it caused, in one transaction; False when it was no
        longer pending (cancelled meanwhile)."""
        ns, iid = step.namespace, step.incident_id
        statements: list[tuple[str, Sequence[object]]] = [
            (
                "UPDATE steps SET state = 'fired', fired_at = ? WHERE id = ? AND state = 'pending'",
                (ts(fired_at), step.id),
            ),
            (
                "UPDATE escalations SET state = 'active' WHERE namespace = ? AND incident_id = ? "
                "AND state = 'acknowledged' AND epoch = ?",
                (ns, iid, step.epoch),
            ),
        ]
        statements += [
            (
                "INSERT OR IGNORE INTO links (nonce, namespace, incident_id, address, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                (k.nonce, k.namespace, k.incident_id, k.address, ts(k.expires_at)),
            )
            for k in links
        ]
        statements += [self._new_delivery(d, fired_at) for d in deliveries]
        if following is not None:
            statements.append(
                (
                    "INSERT OR IGNORE INTO steps (namespace, incident_id, epoch, round, level, "
                    "due_at, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                    (ns, iid, step.epoch, following.round, following.level, ts(following.due_at)),
                )
            )
        return await self._write_if_first([*statements, *self._outbox(events)])

    @staticmethod
    def _new_delivery(d: NewDelivery, now: datetime) -> tuple[str, Sequence[object]]:
        return (
            "INSERT OR IGNORE INTO deliveries (key, namespace, incident_id, level, targets, "
            "subject, body, due_at, next_try_at, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                d.key,
                d.namespace,
                d.incident_id,
                d.level,
                json.dumps(d.targets),
                d.subject,
                d.body,
                ts(d.due_at),
                ts(now),
            ),
        )

    async def add_delivery(self, delivery: NewDelivery, now: datetime) -> bool:
        """Queue one notification (a playbook's); False when its key was queued before."""
        [added] = await self._write([self._new_delivery(delivery, now)])
        return added == 1

    async def record_events(self, events: Sequence[BusEvent]) -> None:
        await self._write(self._outbox(events))

    # --- deliveries -------------------------------------------------------------------------

    async def due_deliveries(self, now: datetime, limit: int = 50) -> list[Delivery]:
        rows = await self._read(
            "SELECT id, key, namespace, incident_id, level, targets, subject, body, due_at, "
            "attempts, alerted FROM deliveries WHERE state = 'pending' AND next_try_at <= ? "
            "ORDER BY next_try_at LIMIT ?",
            (ts(now), limit),
        )
        return [_delivery(r) for r in rows]

    async def sent(
        self, delivery: Delivery, message_id: str, at: datetime, events: Sequence[BusEvent]
    ) -> None:
        await self._write(
            [
                (
                    "UPDATE deliveries SET state = 'sent', sent_at = ?, message_id = ?, "
                    "attempts = attempts + 1 WHERE id = ? AND state = 'pending'",
                    (ts(at), message_id, delivery.id),
                ),
                *self._outbox(events),
            ]
        )

    async def failed(
        self,
        delivery: Delivery,
        error: str,
        next_try_at: datetime | None,
        alerted: bool,
        events: Sequence[BusEvent],
    ) -> None:
        """One failed attempt: try again at ``next_try_at``, or give up (None)."""
        state, when = ("pending", ts(next_try_at)) if next_try_at else ("failed", None)
        await self._write(
            [
                (
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, state = ?, "
                    "next_try_at = COALESCE(?, next_try_at), alerted = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (error, state, when, int(alerted), delivery.id),
                ),
                *self._outbox(events),
            ]
        )

    async def overdue(self, before: datetime, limit: int = 50) -> list[tuple[Delivery, str]]:
        """Pending deliveries due before ``before`` that raised no alert yet, with their last
        error ("" when never attempted)."""
        rows = await self._read(
            "SELECT id, key, namespace, incident_id, level, targets, subject, body, due_at, "
            "attempts, alerted, last_error FROM deliveries WHERE state = 'pending' "
            "AND alerted = 0 AND due_at < ? ORDER BY due_at LIMIT ?",
            (ts(before), limit),
        )
        return [(_delivery(r), r[11] or "") for r in rows]

    async def alerted(self, delivery: Delivery, events: Sequence[BusEvent]) -> None:
        await self._write(
            [
                ("UPDATE deliveries SET alerted = 1 WHERE id = ? AND alerted = 0", (delivery.id,)),
                *self._outbox(events),
            ]
        )

    async def delivery_states(self, namespace: str, incident_id: str) -> list[aiosqlite.Row]:
        """(level, targets, state, attempts, last_error) of an incident's deliveries, in order."""
        return await self._read(
            "SELECT level, targets, state, attempts, last_error, sent_at, due_at "
            "FROM deliveries WHERE namespace = ? AND incident_id = ? ORDER BY id",
            (namespace, incident_id),
        )

    async def lateness(self) -> list[float]:
        """Seconds between each fired step's due time and its firing."""
        rows = await self._read("SELECT due_at, fired_at FROM steps WHERE state = 'fired'")
        return [(from_ts(f) - from_ts(d)).total_seconds() for d, f in rows]

    # --- links ------------------------------------------------------------------------------

    async def link_used(self, nonce: str) -> bool | None:
        """Whether the link was used; None when it was never issued."""
        rows = await self._read("SELECT used_at FROM links WHERE nonce = ?", (nonce,))
        return None if not rows else rows[0][0] is not None

    async def consume_link(self, nonce: str, at: datetime, via: str) -> bool:
        """Use the link once: True for the first use only."""
        [used] = await self._write(
            [
                (
                    "UPDATE links SET used_at = ?, via = ? WHERE nonce = ? AND used_at IS NULL",
                    (ts(at), via, nonce),
                )
            ]
        )
        return used == 1

    async def release_link(self, nonce: str) -> None:
        """Undo a use whose acknowledgement did not go through, so the link works again."""
        await self._write(
            [("UPDATE links SET used_at = NULL, via = NULL WHERE nonce = ?", (nonce,))]
        )

    # --- outbox -----------------------------------------------------------------------------

    async def outbox(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        rows = await self._read(
            "SELECT id, event_id, subject, data FROM outbox ORDER BY id LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def published(self, ids: Sequence[int]) -> None:
        await self._write([("DELETE FROM outbox WHERE id = ?", (i,)) for i in ids])
