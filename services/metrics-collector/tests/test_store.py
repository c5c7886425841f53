"""The SQLite sample store: batched writes stored once, queries aggregated per step from raw
values and from minute rollups, quantiles as numpy computes them, retention and TTL expiry."""

from __future__ import annotations

import random
import statistics
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hms_contracts.metrics import MetricQuery
from hms_metrics_collector.core import (
    QueryError,
    aggregate,
    increase,
    labels_key,
    parse_selector,
    quantile,
    sample_problem,
)
from hms_metrics_collector.ports import StoredBatch
from hms_metrics_collector.store import Retention, SqliteStore, ms

NS = "usds_unemployment"
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


Rows = list[tuple[str, dict[str, str], datetime, float]]


def batch(event_id: str, rows: Rows, **kw: object) -> StoredBatch:
    return StoredBatch(
        event_id,
        str(kw.get("namespace", NS)),
        str(kw.get("origin", "push")),
        kw.get("ttl_s"),  # type: ignore[arg-type]
        [(n, labels_key(lb), ms(at), v) for n, lb, at, v in rows],
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "m.sqlite3", Retention(raw_s=3600, rollup_s=7 * 86400))
    yield s
    await s.close()


def q(
    series: str, fn: str, range_s: float = 600, step_s: float = 60, end: datetime | None = None
) -> MetricQuery:
    return MetricQuery.model_validate(
        {"series": series, "fn": fn, "range_s": range_s, "step_s": step_s, "end": end}
    )


def test_quantiles_match_the_standard_librarys_on_random_data() -> None:
    # statistics' "inclusive" method is numpy's default (linear, R type 7)
    rng = random.Random(7)
    for n in (2, 3, 10, 101, 1000):
        values = [rng.lognormvariate(5, 1) for _ in range(n)]
        inclusive = statistics.quantiles(values, n=100, method="inclusive")
        for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
            assert aggregate(name, values, None, 60) == pytest.approx(inclusive[p - 1], rel=1e-9)
    assert quantile(0.99, [4.0]) == 4.0


def test_rate_counts_a_counter_reset_from_zero() -> None:
    assert increase([10, 20, 5, 15], base=None) == 10 + 5 + 10
    assert increase([15], base=10) == 5
    assert increase([15], base=None) is None
    assert aggregate("rate", [120.0], 0.0, 60) == 2.0


def test_a_selector_reads_a_name_and_equality_matchers_and_refuses_anything_else() -> None:
    sel = parse_selector('api.latency_ms{route="/claims", method="GET"}')
    assert sel.name == "api.latency_ms"
    assert sel.matchers == (("method", "GET"), ("route", "/claims"))
    assert parse_selector('x{a="q\\"uote"}').matchers == (("a", 'q"uote'),)
    for bad in ("", "a b", 'x{a=~"re"}', "x{a=1}", "x{", "__import__('os')"):
        with pytest.raises(QueryError):
            parse_selector(bad)


def test_a_sample_is_refused_with_its_reason() -> None:
    assert sample_problem("ok.name", 1.0, {"a": "b"}, 4) == ""
    assert sample_problem("ok", float("nan"), {}, 4) == "non_finite"
    assert sample_problem("ok", float("-inf"), {}, 4) == "non_finite"
    assert sample_problem("no spaces", 1.0, {}, 4) == "bad_name"
    assert sample_problem("ok", 1.0, {"1bad": "x"}, 4) == "bad_labels"
    assert sample_problem("ok", 1.0, {f"l{i}": "x" for i in range(5)}, 4) == "too_many_labels"


async def test_p99_of_stored_random_samples_matches_the_standard_library(
    store: SqliteStore,
) -> None:
    rng = random.Random(1)
    values = [rng.gauss(300, 80) for _ in range(3000)]
    rows = [
        ("api.latency_ms", {"route": "/claims"}, T0 + timedelta(milliseconds=17 * i + 1), v)
        for i, v in enumerate(values)
    ]
    # batches of messages, one transaction each
    await store.write([batch(f"b{i}", rows[i : i + 500]) for i in range(0, len(rows), 500)])
    end = T0 + timedelta(minutes=1)
    [series] = await store.query(NS, q('api.latency_ms{route="/claims"}', "p99", 60, 60, end), end)
    [point] = series.points
    expected = statistics.quantiles(values, n=100, method="inclusive")[98]
    assert point.value == pytest.approx(expected, rel=1e-9)
    [series] = await store.query(NS, q("api.latency_ms", "count", 60, 60, end), end)
    assert series.points[0].value == 3000


async def test_a_redelivered_batch_is_stored_once(store: SqliteStore) -> None:
    rows: Rows = [("jobs.done", {}, T0 + timedelta(seconds=i + 1), 1.0) for i in range(10)]
    assert await store.write([batch("same", rows)]) == 1
    assert await store.write([batch("same", rows), batch("same", rows)]) == 0
    end = T0 + timedelta(minutes=1)
    [s] = await store.query(NS, q("jobs.done", "sum", 60, 60, end), end)
    assert s.points[0].value == 10.0


async def test_every_fn_over_steps_from_raw_values(store: SqliteStore) -> None:
    # one sample every 10 s for 5 minutes: values 0..29
    rows: Rows = [("c", {}, T0 + timedelta(seconds=10 * i + 1), float(i)) for i in range(30)]
    await store.write([batch("b", rows)])
    end = T0 + timedelta(minutes=5)
    got = {}
    for fn in ("last", "avg", "min", "max", "sum", "count", "rate", "p50"):
        [s] = await store.query(NS, q("c", fn, 300, 60, end), end)
        got[fn] = [p.value for p in s.points]
    assert got["last"] == [5, 11, 17, 23, 29]
    assert got["min"] == [0, 6, 12, 18, 24]
    assert got["max"] == got["last"]
    assert got["count"] == [6] * 5
    assert got["sum"] == [sum(range(k * 6, k * 6 + 6)) for k in range(5)]
    assert got["avg"] == [2.5, 8.5, 14.5, 20.5, 26.5]
    assert got["p50"] == got["avg"]
    # the first step has no base: 5 over 60 s; the next ones 6 each (from the step before)
    assert got["rate"] == [pytest.approx(5 / 60)] + [pytest.approx(6 / 60)] * 4


async def test_steps_older_than_the_raw_window_come_from_minute_rollups(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "r.sqlite3", Retention(raw_s=600, rollup_s=86400))
    try:
        # minutes 12:01 to 12:59, a sample every 5 s
        rows = [
            ("g", {"a": "1"}, T0 + timedelta(seconds=60 + 5 * i), float(i % 12))
            for i in range(12 * 59)
        ]
        await store.write([batch("b", rows)])
        now = T0 + timedelta(hours=2)
        await store.prune(now)  # raw samples older than 10 minutes go
        [s] = await store.query(NS, q("g", "max", 3600 * 2, 600, now), now)
        assert [p.value for p in s.points] == [11.0] * 6
        [s] = await store.query(NS, q("g", "count", 3600 * 2, 3600, now), now)
        assert [p.value for p in s.points] == [708.0]
        # quantiles need raw values, which are gone
        assert await store.query(NS, q("g", "p99", 3600 * 2, 600, now), now) == []
    finally:
        await store.close()


async def test_a_pushed_series_with_a_ttl_expires_and_a_new_push_renews_it(
    store: SqliteStore,
) -> None:
    await store.write([batch("p1", [("deploy.version", {}, T0, 142.0)], ttl_s=60)])
    await store.write([batch("p2", [("queue.depth", {}, T0, 7.0)])])
    query = q("deploy.version", "last", 600, 60)
    assert await store.query(
        NS, query.model_copy(update={"end": T0 + timedelta(seconds=30)}), T0 + timedelta(seconds=30)
    )
    later = T0 + timedelta(seconds=61)
    assert await store.query(NS, query.model_copy(update={"end": later}), later) == []
    assert await store.query(NS, q("queue.depth", "last", 600, 60, later), later)
    assert await store.prune(later) == 1
    assert store.series_count(NS) == 1
    await store.write([batch("p3", [("deploy.version", {}, later, 143.0)], ttl_s=60)])
    [s] = await store.query(NS, query.model_copy(update={"end": later}), later)
    assert s.points[-1].value == 143.0


async def test_series_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await SqliteStore.open(path)
    await store.write([batch("b", [("x", {"k": "v"}, T0, 1.0)])])
    await store.close()
    store = await SqliteStore.open(path)
    try:
        assert store.knows(NS, "x", labels_key({"k": "v"}))
        assert store.series_count(NS) == 1
        await store.write([batch("c", [("y", {}, T0, 1.0)])])
        assert store.series_count(NS) == 2
    finally:
        await store.close()


async def test_a_query_with_too_many_points_is_refused(store: SqliteStore) -> None:
    with pytest.raises(QueryError, match="points"):
        await store.query(NS, q("x", "last", 86400 * 30, 1), T0)


async def test_samples_of_one_minute_written_apart_and_out_of_order_read_back_in_order(
    store: SqliteStore,
) -> None:
    at = [T0 + timedelta(seconds=s) for s in (50, 10, 30, 20, 40)]
    for i, when in enumerate(at):
        await store.write([batch(f"w{i}", [("q.depth", {}, when, float(when.second))])])
    end = T0 + timedelta(minutes=1)
    for fn, expected in (("count", 5.0), ("last", 50.0), ("p50", 30.0), ("sum", 150.0)):
        [s] = await store.query(NS, q("q.depth", fn, 60, 60, end), end)
        assert s.points[-1].value == expected, fn
    # the rate sees them in time order: a steady rise, no reset
    [s] = await store.query(NS, q("q.depth", "rate", 60, 60, end), end)
    assert s.points[-1].value == pytest.approx(40 / 60)
