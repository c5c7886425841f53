"""The worker-pool's projection: each run's final outcome, recorded once (UNIQUE run), and each
fanned-out work item done (UNIQUE run and index), committed before the ack, so a redelivered run
that already ended, or a redelivered item already done, is acked without running again.

The worker-pool processes of a host share the file (``<state_dir>/worker_pool.sqlite3``, WAL),
so a redelivery to another process on the host is recognised too."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite

OUTCOMES_FILE = "worker_pool.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    namespace   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    UNIQUE (namespace, run_id)
);
CREATE TABLE IF NOT EXISTS items_done (
    namespace   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    item        INTEGER NOT NULL,
    UNIQUE (namespace, run_id, item)
)
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended for good: ``completed`` or ``dead_lettered``."""

    namespace: str
    run_id: str
    outcome: str
    attempts: int
    detail: str
    finished_at: datetime


class OutcomeStore:
    """Runs' final outcomes in SQLite (``<state_dir>/worker_pool.sqlite3``)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> OutcomeStore:
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=10000")
        await db.executescript(_SCHEMA)
        await db.commit()
        return cls(db)

    async def get(self, namespace: str, run_id: str) -> str | None:
        """The outcome recorded for the run, if it already ended."""
        async with self.db.execute(
            "SELECT outcome FROM outcomes WHERE namespace = ? AND run_id = ?", (namespace, run_id)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def record(self, outcome: Outcome) -> None:
        """Record the run's end (the first record of a run wins) and commit."""
        await self.db.execute(
            "INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)",
            (
                outcome.namespace,
                outcome.run_id,
                outcome.outcome,
                outcome.attempts,
                outcome.detail,
                outcome.finished_at.isoformat(),
            ),
        )
        await self.db.commit()

    async def done_items(self, keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
        """Which of ``keys`` (namespace, run_id, item) are recorded done."""
        by_run: dict[tuple[str, str], list[int]] = {}
        for namespace, run_id, item in keys:
            by_run.setdefault((namespace, run_id), []).append(item)
        found: set[tuple[str, str, int]] = set()
        for (namespace, run_id), items in by_run.items():
            async with self.db.execute(
                "SELECT item FROM items_done WHERE namespace = ? AND run_id = ? "
                "AND item IN (SELECT value FROM json_each(?))",
                (namespace, run_id, json.dumps(items)),
            ) as cursor:
                found.update((namespace, run_id, int(r[0])) for r in await cursor.fetchall())
        return found

    async def record_items(self, keys: list[tuple[str, str, int]]) -> None:
        """Record items done (a repeat is ignored) in one transaction, and commit."""
        if not keys:
            return
        await self.db.executemany("INSERT OR IGNORE INTO items_done VALUES (?, ?, ?)", keys)
        await self.db.commit()

    async def close(self) -> None:
        await self.db.close()


def read_outcomes(path: Path) -> list[tuple[str, str, str, int]]:
    """Every recorded outcome as (namespace, run_id, outcome, attempts): a test's view."""
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT namespace, run_id, outcome, attempts FROM outcomes")
        return [(str(a), str(b), str(c), int(d)) for a, b, c, d in rows]
    finally:
        db.close()


def read_items_done(path: Path) -> list[tuple[str, str, int]]:
    """Every item recorded done as (namespace, run_id, item): a test's view."""
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT namespace, run_id, item FROM items_done")
        return [(str(a), str(b), int(c)) for a, b, c in rows]
    finally:
        db.close()
