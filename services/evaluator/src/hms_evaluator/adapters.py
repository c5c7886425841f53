"""The ports' adapters: config from the registry (or lists, in tests) and the SQLite ledger."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from hms_contracts import specs, subjects
from hms_contracts.config import Alert, Job, Slo
from hms_kit import Service
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError

from .core import SERVICE
from .core.deadlines import DeadlineWatch, ExpectedRun
from .core.rules import LabelKey, StoredState
from .core.states import AlertState

log = logging.getLogger(__name__)


SloAlerts = dict[str, AlertState]


class StaticConfig:
    """Fixed, replaceable lists of rules, SLOs and jobs (tests, and config given in code)."""

    def __init__(
        self, alerts: Iterable[Alert] = (), slos: Iterable[Slo] = (), jobs: Iterable[Job] = ()
    ) -> None:
        self.current_alerts = list(alerts)
        self.current_slos = list(slos)
        self.current_jobs = list(jobs)

    def alerts(self) -> Sequence[Alert]:
        return tuple(self.current_alerts)

    def slos(self) -> Sequence[Slo]:
        return tuple(self.current_slos)

    def jobs(self) -> Sequence[Job]:
        return tuple(self.current_jobs)


class WatchedConfig:
    """What the service's config watcher holds (kinds ``alert``, ``slo`` and ``job``): a
    snapshot at start, then every change, each entry re-validated; an unreadable entry keeps
    its last good version and is reported by the watcher."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def alerts(self) -> Sequence[Alert]:
        return tuple(o for o in self.service.config.objects("alert") if isinstance(o, Alert))

    def slos(self) -> Sequence[Slo]:
        return tuple(o for o in self.service.config.objects("slo") if isinstance(o, Slo))

    def jobs(self) -> Sequence[Job]:
        return tuple(o for o in self.service.config.objects("job") if isinstance(o, Job))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_states (
    rule_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    labels TEXT NOT NULL,
    phase TEXT NOT NULL,
    active_since REAL,
    last_held REAL,
    value REAL NOT NULL,
    PRIMARY KEY (rule_key, fingerprint)
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS slo_minutes (
    slo_key TEXT NOT NULL,
    minute INTEGER NOT NULL,
    good REAL NOT NULL,
    total REAL NOT NULL,
    PRIMARY KEY (slo_key, minute)
);
CREATE TABLE IF NOT EXISTS slo_bases (
    slo_key TEXT NOT NULL,
    role TEXT NOT NULL,
    series TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (slo_key, role, series)
);
CREATE TABLE IF NOT EXISTS slo_alerts (
    slo_key TEXT NOT NULL,
    label TEXT NOT NULL,
    phase TEXT NOT NULL,
    active_since REAL,
    last_held REAL,
    value REAL NOT NULL,
    PRIMARY KEY (slo_key, label)
);
CREATE TABLE IF NOT EXISTS job_marks (
    job_key TEXT PRIMARY KEY,
    mark TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_durations (
    job_key TEXT PRIMARY KEY,
    seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS expected_runs (
    namespace TEXT NOT NULL,
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    failed INTEGER NOT NULL,
    reported TEXT NOT NULL,
    PRIMARY KEY (namespace, run_id)
);
"""


def _ts(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class SqliteLedger:
    """The evaluator's state in its SQLite file: alert states and the outbox of announcements
    not yet stored on the bus, SLO minutes, the SLA monitor's expected runs. Each write is one
    transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._seq = 0

    async def connection(self) -> aiosqlite.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
            await db.commit()
            async with db.execute("SELECT coalesce(max(seq), 0) FROM outbox") as rows:
                row = await rows.fetchone()
                self._seq = int(row[0]) if row else 0
            self._db = db
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # --- alerts -----------------------------------------------------------------------------

    async def alert_states(self) -> list[StoredState]:
        db = await self.connection()
        async with db.execute("SELECT * FROM alert_states") as rows:
            return [
                StoredState(rule, fp, json.loads(labels), AlertState(phase, since, held, value))
                async for rule, fp, labels, phase, since, held, value in rows
            ]

    async def commit(
        self,
        states: Sequence[StoredState] = (),
        events: Sequence[Any] = (),
        slo: Sequence[tuple[str, Any]] = (),
        runs: Sequence[ExpectedRun] = (),
        marks: Sequence[tuple[str, datetime]] = (),
        durations: Sequence[tuple[str, float]] = (),
    ) -> None:
        """Store state changes and the events that announce them, in one transaction."""
        db = await self.connection()
        gone = [(s.rule_key, s.fingerprint) for s in states if s.state.phase == "inactive"]
        await db.executemany(
            "DELETE FROM alert_states WHERE rule_key = ? AND fingerprint = ?", gone
        )
        await db.executemany(
            "INSERT OR REPLACE INTO alert_states VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    s.rule_key,
                    s.fingerprint,
                    json.dumps(s.labels, sort_keys=True),
                    s.state.phase,
                    s.state.active_since,
                    s.state.last_held,
                    s.state.value,
                )
                for s in states
                if s.state.phase != "inactive"
            ],
        )
        rows = []
        for event in events:
            self._seq += 1
            rows.append(
                (
                    event.event_id,
                    event.subject(),
                    event.model_dump_json(),
                    type(event).__name__,
                    self._seq,
                )
            )
        await db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, ?)", rows)
        for sql, params in slo:
            await db.executemany(sql, params)
        await db.executemany(
            "INSERT OR REPLACE INTO expected_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.namespace,
                    r.run_id,
                    r.job_id,
                    _ts(r.scheduled_at),
                    _ts(r.deadline),
                    _ts(r.started_at),
                    _ts(r.completed_at),
                    int(r.failed),
                    json.dumps(sorted(r.reported)),
                )
                for r in runs
            ],
        )
        await db.executemany(
            "INSERT OR REPLACE INTO job_marks VALUES (?, ?)", [(k, _ts(m)) for k, m in marks]
        )
        await db.executemany("INSERT OR REPLACE INTO job_durations VALUES (?, ?)", durations)
        await db.commit()

    async def outbox(self) -> list[tuple[str, str, bytes]]:
        """Announcements not yet stored on the bus, oldest first: (event id, subject, payload)."""
        db = await self.connection()
        async with db.execute("SELECT event_id, subject, payload FROM outbox ORDER BY seq") as rows:
            return [(eid, subject, payload.encode()) async for eid, subject, payload in rows]

    async def sent(self, event_ids: Sequence[str]) -> None:
        db = await self.connection()
        await db.executemany("DELETE FROM outbox WHERE event_id = ?", [(e,) for e in event_ids])
        await db.commit()

    # --- SLOs -------------------------------------------------------------------------------

    async def slo_state(
        self, slo_key: str
    ) -> tuple[list[tuple[int, float, float]], list[tuple[Any, LabelKey, float]], SloAlerts]:
        db = await self.connection()
        async with db.execute(
            "SELECT minute, good, total FROM slo_minutes WHERE slo_key = ?", (slo_key,)
        ) as rows:
            minutes = [(m, g, t) async for m, g, t in rows]
        async with db.execute(
            "SELECT role, series, value FROM slo_bases WHERE slo_key = ?", (slo_key,)
        ) as rows:
            bases = [
                (role, tuple(tuple(p) for p in json.loads(series)), value)
                async for role, series, value in rows
            ]
        async with db.execute(
            "SELECT label, phase, active_since, last_held, value FROM slo_alerts WHERE slo_key = ?",
            (slo_key,),
        ) as rows:
            alerts = {
                label: AlertState(phase, since, held, value)
                async for label, phase, since, held, value in rows
            }
        return minutes, bases, alerts

    # --- deadlines --------------------------------------------------------------------------

    async def deadline_state(
        self,
    ) -> tuple[dict[str, datetime], list[ExpectedRun], dict[str, float]]:
        db = await self.connection()
        async with db.execute("SELECT job_key, mark FROM job_marks") as rows:
            marks = {key: datetime.fromisoformat(mark) async for key, mark in rows}
        async with db.execute("SELECT job_key, seconds FROM job_durations") as rows:
            durations = {key: seconds async for key, seconds in rows}
        async with db.execute("SELECT * FROM expected_runs") as rows:
            runs = [
                ExpectedRun(
                    row[0],
                    row[2],
                    row[1],
                    datetime.fromisoformat(row[3]),
                    datetime.fromisoformat(row[4]),
                    _dt(row[5]),
                    _dt(row[6]),
                    bool(row[7]),
                    set(json.loads(row[8])),
                )
                async for row in rows
            ]
        return marks, runs, durations

    async def forget_runs(self, keys: Iterable[tuple[str, str]]) -> None:
        db = await self.connection()
        await db.executemany(
            "DELETE FROM expected_runs WHERE namespace = ? AND run_id = ?", list(keys)
        )
        await db.commit()


# --- the bus: rebuilding windows, looking into work queues -----------------------------------


async def replay_metrics(
    js: JetStreamContext,
    since: datetime,
    handle: Callable[[list[Msg]], Awaitable[None]],
    *,
    inbox_prefix: str,
    batch: int = 256,
) -> int:
    """Read the METRICS stream from ``since`` up to its last message at the time of the call,
    through the evaluator's replay consumer, handing each fetch to ``handle``; the last stream
    sequence read (0: nothing)."""
    stream = specs.METRICS.name
    info = await js.stream_info(stream)
    upto = info.state.last_seq
    if not info.state.messages:
        return 0
    name = specs.replay_consumer(SERVICE)
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, name)
    created = await js.add_consumer(
        stream,
        js_api.ConsumerConfig(
            name=name,
            filter_subject=subjects.METRIC.wildcard(),
            deliver_policy=js_api.DeliverPolicy.BY_START_TIME,
            opt_start_time=since.astimezone(UTC),
            ack_policy=js_api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    last = 0
    if not created.num_pending:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
        return 0
    sub = await js.pull_subscribe_bind(
        consumer=name, stream=stream, inbox_prefix=(inbox_prefix + ".").encode()
    )
    try:
        while last < upto:
            try:
                msgs = await sub.fetch(batch, timeout=2.0)
            except (TimeoutError, NatsTimeoutError):
                break
            await handle(msgs)
            last = msgs[-1].metadata.sequence.stream
            if msgs[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
    return last


class WorkQueues:
    """Whether a run's work item waits in its work queue (``JOB_RUNS``): read, never taken."""

    def __init__(self, js: JetStreamContext, limit: int = 1000) -> None:
        self.js = js
        self.limit = limit

    async def __call__(self, watch: DeadlineWatch, now: datetime) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for run in watch.at_risk(now):
            job = watch.jobs.get(f"{run.namespace}.job.{run.job_id}")
            if job is None:
                continue
            subject = subjects.JOB_RUN.subject(run.namespace, job.queue)
            seq = 1
            for _ in range(self.limit):
                try:
                    msg = await self.js.get_msg(
                        specs.JOB_RUNS.name, seq=seq, subject=subject, next=True
                    )
                except (NotFoundError, APIError):
                    break
                seq = (msg.seq or seq) + 1
                try:
                    doc = json.loads(msg.data or b"{}")
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("run_id") == run.run_id:
                    found.add((run.namespace, run.run_id))
                    break
        return found
