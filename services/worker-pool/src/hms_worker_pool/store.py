"""The worker-pool's projection: each run's final outcome, recorded once (UNIQUE run) and
committed before the work item is acked, so a redelivered run that already ended is not run
again."""

from __future__ import annotations

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
        await db.execute(_SCHEMA)
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
