"""The worker-pool's projection: each run's final outcome, recorded once (UNIQUE run), and each
fanned-out work item done (UNIQUE run and index), committed before the ack, so a redelivered run
that already ended, or a redelivered item already done, is acked without running again.

The worker-pool processes of a host share the file (``<state_dir>/worker_pool.sqlite3``, WAL),
so a redelivery to another process on the host is recognised too."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

OUTCOMES_FILE = "worker_pool.sqlite3"
T = TypeVar("T")

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
    """Runs' final outcomes and items done in SQLite (``<state_dir>/worker_pool.sqlite3``).

    Each operation is one call on the store's own thread (the connection lives there): a
    batch of items costs one hop for its check and one for its record, not one per statement
    (each hop waits for the event loop to yield the GIL, which on a busy loop costs
    milliseconds). ``synchronous=FULL``: a commit is on disk before the ack goes out.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcomes")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> OutcomeStore:
        store = cls(path)
        await store._call(store._open)
        return store

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        db.commit()
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the outcome store is not open")
        return self._db

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def get(self, namespace: str, run_id: str) -> str | None:
        """The outcome recorded for the run, if it already ended."""

        def read() -> str | None:
            row = self.db.execute(
                "SELECT outcome FROM outcomes WHERE namespace = ? AND run_id = ?",
                (namespace, run_id),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._call(read)

    async def record(self, outcome: Outcome) -> None:
        """Record the run's end (the first record of a run wins) and commit."""
        row = (
            outcome.namespace,
            outcome.run_id,
            outcome.outcome,
            outcome.attempts,
            outcome.detail,
            outcome.finished_at.isoformat(),
        )

        def write() -> None:
            with self.db:
                self.db.execute("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)", row)

        await self._call(write)

    async def done_items(self, keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
        """Which of ``keys`` (namespace, run_id, item) are recorded done."""
        by_run: dict[tuple[str, str], list[int]] = {}
        for namespace, run_id, item in keys:
            by_run.setdefault((namespace, run_id), []).append(item)

        def read() -> set[tuple[str, str, int]]:
            found: set[tuple[str, str, int]] = set()
            for (namespace, run_id), items in by_run.items():
                rows = self.db.execute(
                    "SELECT item FROM items_done WHERE namespace = ? AND run_id = ? "
                    "AND item IN (SELECT value FROM json_each(?))",
                    (namespace, run_id, json.dumps(items)),
                )
                found.update((namespace, run_id, int(r[0])) for r in rows)
            return found

        return await self._call(read) if keys else set()

    async def record_items(self, keys: list[tuple[str, str, int]]) -> None:
        """Record items done (a repeat is ignored) in one transaction, and commit."""

        def write() -> None:
            with self.db:
                self.db.executemany("INSERT OR IGNORE INTO items_done VALUES (?, ?, ?)", keys)

        if keys:
            await self._call(write)

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self.db.close)
            self._db = None
        self._thread.shutdown(wait=False)


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
