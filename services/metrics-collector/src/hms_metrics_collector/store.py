"""The SQLite sample store (aiosqlite): raw samples for a short window, 1-minute rollups for
the retention period, one transaction per batch of messages.

Tables: ``series`` (one row per namespace, name and label set; a pushed series with a TTL
carries its expiry), ``raw`` (series, minute: the minute's samples packed as (ms, value)
pairs, appended to by each write, so a busy series costs one row a minute), ``rollup``
(series, minute: count, sum, min, max, last) and ``batches`` (event ids already stored: a
redelivered batch is skipped, so the rollups count each sample once). Series ids are given
out by this process (one writer), and the series are held in memory for the checks on the
hot path.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
from hms_contracts.metrics import MetricPoint, MetricQuery, MetricSeries

from .core import (
    QueryError,
    Rollup,
    Selector,
    aggregate,
    aggregate_rollups,
    parse_selector,
    step_ends,
)
from .ports import StoredBatch

STORE_FILE = "metrics.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    last_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    UNIQUE (namespace, name, labels)
);
CREATE TABLE IF NOT EXISTS raw (
    series_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    samples BLOB NOT NULL,
    PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS raw_minute ON raw (minute);
CREATE TABLE IF NOT EXISTS rollup (
    series_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last_ts INTEGER NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_minute ON rollup (minute);
CREATE TABLE IF NOT EXISTS batches (
    event_id TEXT PRIMARY KEY,
    seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batches_seen ON batches (seen_ms);
"""

_UPSERT_ROLLUP = """
INSERT INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_id, minute) DO UPDATE SET
    count = count + excluded.count,
    sum = sum + excluded.sum,
    min = min(min, excluded.min),
    max = max(max, excluded.max),
    last = CASE WHEN excluded.last_ts >= last_ts THEN excluded.last ELSE last END,
    last_ts = max(last_ts, excluded.last_ts)
"""

_APPEND_RAW = """
INSERT INTO raw VALUES (?, ?, ?)
ON CONFLICT (series_id, minute) DO UPDATE SET
    samples = CAST(samples || excluded.samples AS BLOB)
"""

#: one raw sample in a packed minute: unix ms, value
PACKED = struct.Struct("<qd")

_TOUCH_SERIES = """
UPDATE series SET
    expires_ms = CASE WHEN ?1 >= last_ms THEN ?2 ELSE expires_ms END,
    last_ms = max(last_ms, ?1)
WHERE id = ?3
"""

MINUTE_MS = 60_000


def _pack(flat: Sequence[int | float]) -> bytes:
    """(ms, value, ms, value, ...) as packed pairs."""
    return struct.pack("<" + "qd" * (len(flat) // 2), *flat)


def _unpack(blob: bytes) -> list[tuple[int, float]]:
    return list(PACKED.iter_unpack(blob))


def ms(at: datetime) -> int:
    """An aware datetime as unix milliseconds."""
    return math.floor(at.timestamp() * 1000)


@dataclass(slots=True)
class _Series:
    id: int
    labels: dict[str, str]
    last_ms: int
    expires_ms: int | None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long samples are kept: raw, as rollups, and how long batch ids are remembered."""

    raw_s: float = 2 * 3600.0
    rollup_s: float = 30 * 86400.0
    dedupe_s: float = 86400.0
    max_points: int = 11_000
    max_series_per_query: int = 1_000


class SqliteStore:
    """The default :class:`~hms_metrics_collector.ports.SampleStore`."""

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        self.path = path
        self.retention = retention or Retention()
        self._db: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()
        self._ids: dict[tuple[str, str, str], _Series] = {}
        self._by_name: dict[tuple[str, str], list[_Series]] = defaultdict(list)
        self._count: dict[str, int] = defaultdict(int)
        self._next_id = 1

    @classmethod
    async def open(cls, path: Path, retention: Retention | None = None) -> SqliteStore:
        """The store at ``path``, opened."""
        store = cls(path, retention)
        await store.start()
        return store

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the sample store is not open yet (await start())")
        return self._db

    async def start(self) -> None:
        """Open the file (once) and load the series into memory."""
        if self._db is not None:
            return
        async with self._opening:
            if self._db is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            await db.execute("PRAGMA journal_mode=WAL")
            # a crash loses at most the last transactions, which JetStream redelivers (unacked)
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            await db.commit()
            async with db.execute(
                "SELECT id, namespace, name, labels, last_ms, expires_ms FROM series"
            ) as rows:
                async for sid, ns, name, labels, last_ms, expires_ms in rows:
                    self._remember(sid, ns, name, labels, last_ms, expires_ms)
            self._db = db

    def _remember(
        self, sid: int, ns: str, name: str, labels: str, last_ms: int, expires_ms: int | None
    ) -> _Series:
        entry = _Series(sid, json.loads(labels), last_ms, expires_ms)
        self._ids[(ns, name, labels)] = entry
        self._by_name[(ns, name)].append(entry)
        self._count[ns] += 1
        self._next_id = max(self._next_id, sid + 1)
        return entry

    # --- the hot path ---------------------------------------------------------------------

    def knows(self, namespace: str, name: str, labels: str) -> bool:
        return (namespace, name, labels) in self._ids

    def series_count(self, namespace: str) -> int:
        return self._count.get(namespace, 0)

    def expired(self, namespace: str, name: str, labels: str, now_ms: int) -> bool:
        """Whether a pushed series' TTL has run out (an unknown series has none)."""
        entry = self._ids.get((namespace, name, labels))
        return entry is not None and entry.expires_ms is not None and entry.expires_ms <= now_ms

    async def write(self, batches: Sequence[StoredBatch]) -> int:
        await self.start()
        now = ms(datetime.now(UTC))
        ids = [b.event_id for b in batches]
        seen: set[str] = set()
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            async with self.db.execute(
                f"SELECT event_id FROM batches WHERE event_id IN ({marks})",  # noqa: S608
                part,
            ) as rows:
                seen.update([r[0] async for r in rows])
        new_series: list[tuple[int, str, str, str, int, int | None]] = []
        raw: dict[tuple[int, int], list[int | float]] = {}
        minutes: dict[tuple[int, int], list[float]] = {}
        touched: dict[int, tuple[int, int | None]] = {}
        fresh = 0
        for batch in batches:
            if batch.event_id in seen:
                continue
            seen.add(batch.event_id)
            fresh += 1
            ttl_ms = None if batch.ttl_s is None else math.ceil(batch.ttl_s * 1000)
            ns = batch.namespace
            for name, labels, ts, value in batch.rows:
                key = (ns, name, labels)
                entry = self._ids.get(key)
                if entry is None:
                    entry = self._remember(self._next_id, ns, name, labels, ts, None)
                    new_series.append((entry.id, ns, name, labels, ts, None))
                slot = (entry.id, ts - ts % MINUTE_MS)
                packed = raw.get(slot)
                if packed is None:
                    raw[slot] = [ts, value]
                else:
                    packed += (ts, value)
                # [count, sum, min, max, last_ts, last]
                agg = minutes.get(slot)
                if agg is None:
                    minutes[slot] = [1, value, value, value, ts, value]
                else:
                    agg[0] += 1
                    agg[1] += value
                    agg[2] = min(agg[2], value)
                    agg[3] = max(agg[3], value)
                    if ts >= agg[4]:
                        agg[4], agg[5] = ts, value
                last, _ = touched.get(entry.id, (ts, None))
                last = max(last, ts)
                touched[entry.id] = (last, None if ttl_ms is None else last + ttl_ms)
                if last >= entry.last_ms:
                    entry.last_ms = last
                    entry.expires_ms = touched[entry.id][1]
        if not fresh:
            return 0
        db = self.db
        try:
            if new_series:
                await db.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?, ?)", new_series)
            await db.executemany(
                _APPEND_RAW,
                [(sid, minute, _pack(flat)) for (sid, minute), flat in raw.items()],
            )
            await db.executemany(
                _UPSERT_ROLLUP,
                [(sid, minute, *agg) for (sid, minute), agg in minutes.items()],
            )
            await db.executemany(
                _TOUCH_SERIES, [(last, exp, sid) for sid, (last, exp) in touched.items()]
            )
            await db.executemany(
                "INSERT OR IGNORE INTO batches VALUES (?, ?)",
                [(b.event_id, now) for b in batches],
            )
            await db.commit()
        except BaseException:
            await db.rollback()
            self._forget([s[0] for s in new_series])
            raise
        return fresh

    def _forget(self, sids: Sequence[int]) -> None:
        """Undo the memory of series whose insert was rolled back."""
        gone = set(sids)
        for key, entry in list(self._ids.items()):
            if entry.id in gone:
                del self._ids[key]
                self._by_name[key[:2]].remove(entry)
                self._count[key[0]] -= 1

    # --- queries ----------------------------------------------------------------------------

    def _matching(self, namespace: str, selector: Selector, now_ms: int) -> list[_Series]:
        found = [
            s
            for s in self._by_name.get((namespace, selector.name), ())
            if selector.matches(s.labels) and (s.expires_ms is None or s.expires_ms > now_ms)
        ]
        if len(found) > self.retention.max_series_per_query:
            raise QueryError(
                f"{len(found)} series match {selector.name!r}; at most "
                f"{self.retention.max_series_per_query} (add label matchers)"
            )
        return found

    async def query(self, namespace: str, query: MetricQuery, now: datetime) -> list[MetricSeries]:
        await self.start()
        selector = parse_selector(query.series)
        now_ms = ms(now)
        end_ms = ms(query.end) if query.end is not None else now_ms
        step_ms = max(1, round(query.step_s * 1000))
        ends = step_ends(end_ms, round(query.range_s * 1000), step_ms, self.retention.max_points)
        matching = self._matching(namespace, selector, now_ms)
        if not matching:
            return []
        start_ms = ends[0] - step_ms
        raw_from = now_ms - round(self.retention.raw_s * 1000)
        raw_rows: dict[int, list[tuple[int, float]]] = defaultdict(list)
        roll_rows: dict[int, list[tuple[int, Rollup]]] = defaultdict(list)
        sids = [s.id for s in matching]
        marks = ",".join("?" * len(sids))
        # one step more before the range: the base of rate in the first step
        lo = max(start_ms - step_ms, raw_from)
        if lo <= end_ms:
            async with self.db.execute(
                f"SELECT series_id, samples FROM raw WHERE series_id IN ({marks}) "  # noqa: S608
                "AND minute > ? AND minute <= ?",
                (*sids, lo - MINUTE_MS, end_ms),
            ) as rows:
                async for sid, blob in rows:
                    raw_rows[sid].extend(p for p in _unpack(blob) if lo < p[0] <= end_ms)
            for found in raw_rows.values():
                found.sort(key=lambda p: p[0])
        if start_ms - step_ms < raw_from:
            async with self.db.execute(
                "SELECT series_id, minute, count, sum, min, max, last FROM rollup "  # noqa: S608
                f"WHERE series_id IN ({marks}) AND minute > ? AND minute <= ? "
                "ORDER BY series_id, minute",
                (*sids, start_ms - 2 * step_ms, min(raw_from, end_ms)),
            ) as rows:
                async for sid, minute, count, total, lo_v, hi_v, last in rows:
                    roll_rows[sid].append((minute, Rollup(count, total, lo_v, hi_v, last)))
        out: list[MetricSeries] = []
        for entry in matching:
            points = _points(
                query.fn,
                ends,
                step_ms,
                raw_from,
                raw_rows.get(entry.id, []),
                roll_rows.get(entry.id, []),
            )
            if points:
                out.append(MetricSeries(name=selector.name, labels=entry.labels, points=points))
        return out

    # --- housekeeping -----------------------------------------------------------------------

    async def prune(self, now: datetime) -> int:
        await self.start()
        now_ms = ms(now)
        r = self.retention
        expired = [
            (key, e)
            for key, e in self._ids.items()
            if (e.expires_ms is not None and e.expires_ms <= now_ms)
            or e.last_ms < now_ms - r.rollup_s * 1000
        ]
        db = self.db
        sids = [(e.id,) for _, e in expired]
        # a minute goes once all of it is past the raw window
        await db.execute(
            "DELETE FROM raw WHERE minute <= ?", (now_ms - round(r.raw_s * 1000) - MINUTE_MS,)
        )
        await db.execute(
            "DELETE FROM rollup WHERE minute <= ?", (now_ms - round(r.rollup_s * 1000),)
        )
        await db.execute(
            "DELETE FROM batches WHERE seen_ms <= ?", (now_ms - round(r.dedupe_s * 1000),)
        )
        if sids:
            await db.executemany("DELETE FROM raw WHERE series_id = ?", sids)
            await db.executemany("DELETE FROM rollup WHERE series_id = ?", sids)
            await db.executemany("DELETE FROM series WHERE id = ?", sids)
        await db.commit()
        self._forget([e.id for _, e in expired])
        return len(expired)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


def _points(
    fn: str,
    ends: Sequence[int],
    step_ms: int,
    raw_from: int,
    raw: Sequence[tuple[int, float]],
    rollups: Sequence[tuple[int, Rollup]],
) -> tuple[MetricPoint, ...]:
    """Aggregate one series' rows into its steps: from raw values where the step lies within
    the raw window, from minute rollups before it."""
    step_s = step_ms / 1000
    out: list[MetricPoint] = []
    i = j = 0
    base: float | None = None
    roll_base: float | None = None
    # values before the first step are only the base of rate
    first_start = ends[0] - step_ms
    while i < len(raw) and raw[i][0] <= first_start:
        base = raw[i][1]
        i += 1
    while j < len(rollups) and rollups[j][0] <= first_start:
        roll_base = rollups[j][1].last
        j += 1
    for end in ends:
        values: list[float] = []
        while i < len(raw) and raw[i][0] <= end:
            values.append(raw[i][1])
            i += 1
        minutes: list[Rollup] = []
        while j < len(rollups) and rollups[j][0] <= end:
            minutes.append(rollups[j][1])
            j += 1
        if end - step_ms >= raw_from or not minutes:
            value = aggregate(fn, values, base, step_s)
        else:
            if values:  # the step straddles the raw window's start
                minutes.append(
                    Rollup(len(values), sum(values), min(values), max(values), values[-1])
                )
            value = aggregate_rollups(fn, minutes, roll_base, step_s)
        if values:
            base = values[-1]
        if minutes:
            roll_base = minutes[-1].last
        if value is not None and math.isfinite(value):
            at = datetime.fromtimestamp(end / 1000, UTC)
            out.append(MetricPoint(at=at, value=value))
    return tuple(out)
