"""The ports' adapters: jobs from the config registry (or a list, in tests), the SQLite ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from hms_contracts import specs, subjects
from hms_contracts.config import Job
from hms_kit import Service
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from .core import Decision

log = logging.getLogger(__name__)


class StaticJobs:
    """A fixed, replaceable list of jobs (tests, and a service given its jobs in code)."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self.current: list[Job] = list(jobs)

    async def jobs(self) -> Sequence[Job]:
        return tuple(self.current)


class WatchedJobs:
    """The jobs the service's config watcher holds (kind ``job`` in the config registry): a
    snapshot at start, then every change, each entry re-validated; an entry that no longer
    validates keeps its last good version and is reported by the watcher."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def jobs(self) -> Sequence[Job]:
        return tuple(o for o in self.service.config.objects("job") if isinstance(o, Job))


class NoActiveRuns:
    """No run is ever active: until the scheduler follows run events, ``overlap`` acts on the
    slots of one decision only."""

    async def active(self, job: Job) -> Collection[str]:
        return ()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS watermarks (
    job_key TEXT PRIMARY KEY,
    watermark TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    namespace TEXT NOT NULL,
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    UNIQUE (namespace, run_id)
);
"""


def _ts(at: datetime) -> str:
    # one fixed width, so that text order is time order in SQL
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteLedger:
    """The ledger in the service's SQLite file, opened on first use: one transaction per
    decision."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def connection(self) -> aiosqlite.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
            await db.commit()
            self._db = db
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def watermarks(self) -> dict[str, datetime]:
        db = await self.connection()
        async with db.execute("SELECT job_key, watermark FROM watermarks") as rows:
            return {key: datetime.fromisoformat(at) async for key, at in rows}

    async def record(self, job: Job, decision: Decision, decided_at: datetime) -> None:
        await self.record_many([(job, decision)], decided_at)

    async def record_many(
        self, decisions: Sequence[tuple[Job, Decision]], decided_at: datetime
    ) -> None:
        at = _ts(decided_at)
        db = await self.connection()
        await db.executemany(
            "INSERT OR IGNORE INTO slots VALUES (?, ?, ?, ?, ?, ?)",
            [
                (job.namespace, s.run_id, job.key(), _ts(s.scheduled_at), outcome, at)
                for job, decision in decisions
                for s, outcome in decision.decided
            ],
        )
        await db.executemany(
            "INSERT INTO watermarks VALUES (?, ?) ON CONFLICT (job_key) "
            "DO UPDATE SET watermark = max(watermark, excluded.watermark)",
            [(job.key(), _ts(decision.watermark)) for job, decision in decisions],
        )
        await db.commit()

    async def outcomes(self, job_key: str) -> dict[str, str]:
        """Every decided slot of a job: run id -> run, missed, overlap, replaced or paused."""
        db = await self.connection()
        async with db.execute(
            "SELECT run_id, outcome FROM slots WHERE job_key = ? ORDER BY scheduled_at", (job_key,)
        ) as rows:
            return {run_id: outcome async for run_id, outcome in rows}


class NotCaughtUp(RuntimeError):
    """The run-events view has not read the stream to its end yet."""


class RunEventsView:
    """Runs under way per job, from the worker-pool's run events (``JOB_EVENTS``), for the
    overlap policies: ``started`` makes a run active; ``completed``, ``dead_lettered`` and a
    ``failed`` that will not be retried end it. Every scheduler instance keeps its own view
    (an ordered consumer from the start of the stream), so a standby that takes over knows
    what runs. Until it has read to the stream's end, it answers nothing (the tick retries)."""

    def __init__(self, js: Callable[[], JetStreamContext]) -> None:
        #: the JetStream context, once connected (the view is opened before the connection)
        self.connect = js
        self.runs: dict[tuple[str, str], set[str]] = {}
        self.caught_up = asyncio.Event()
        self._target = 0
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                js = self.connect()
                info = await js.stream_info(specs.JOB_EVENTS.name)
                self._target = info.state.last_seq
                if self._target == 0:
                    self.caught_up.set()
                self._sub = await js.subscribe(
                    subjects.JOB_EVENT.wildcard(),
                    stream=specs.JOB_EVENTS.name,
                    ordered_consumer=True,
                    cb=self._on_event,
                )
                return
            except NotFoundError:
                # the stream is the worker-pool's: without it no run has started anywhere
                self.caught_up.set()
                await asyncio.sleep(1.0)
            except Exception as exc:
                log.warning("run events not followed yet (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def _on_event(self, msg: Msg) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        try:
            event = json.loads(msg.data)
            key = (str(event["namespace"]), str(event["job_id"]))
            run_id = str(event["run_id"])
        except (ValueError, KeyError, TypeError):
            return
        if kind == "started":
            self.runs.setdefault(key, set()).add(run_id)
        elif kind in ("completed", "dead_lettered") or (
            kind == "failed" and not event.get("will_retry")
        ):
            self.runs.get(key, set()).discard(run_id)
        if msg.metadata.sequence.stream >= self._target:
            self.caught_up.set()

    async def active(self, job: Job) -> Collection[str]:
        if job.overlap == "allow":
            return ()
        if not self.caught_up.is_set():
            raise NotCaughtUp("the run events are still being read")
        return tuple(sorted(self.runs.get((job.namespace, job.name), ())))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
