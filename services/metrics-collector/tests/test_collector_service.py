"""The collector against a real nats-server: pushed batches are stored and answered over the
bus; bad input is refused per sample or per batch with its reason and never stalls it; a pushed
series with a TTL expires (time moved by hand)."""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hms_contracts import MetricSampleBatch, specs, subjects
from hms_contracts.metrics import MetricQueryResult
from hms_kit import FakeClock, Service, publish, publish_many
from hms_metrics_collector.ports import StoredBatch
from hms_metrics_collector.store import SqliteStore
from hms_testing import wait_until
from hms_testing.deadletters import dead_letters
from nats.aio.client import Client
from nats.js import JetStreamContext

NS = "usds_unemployment"
Collector = Callable[..., AbstractAsyncContextManager[Service]]
Ask = Callable[..., Awaitable[MetricQueryResult]]
Rows = list[tuple[str, float, dict[str, str], datetime]]


def pushed(
    samples: Rows,
    *,
    namespace: str = NS,
    source: str = "portal",
    ttl_s: float | None = None,
) -> MetricSampleBatch:
    return MetricSampleBatch.create(
        occurred_at=samples[-1][3],
        namespace=namespace,
        source=source,
        origin="push",
        ttl_s=ttl_s,
        samples=[
            {"name": n, "value": v, "labels": lb, "observed_at": at} for n, v, lb, at in samples
        ],
    )


def values(result: MetricQueryResult) -> list[float]:
    assert result.error is None, result.error
    return [p.value for s in result.series for p in s.points]


def counted(service: Service, name: str, **labels: str) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_pushed_samples_are_stored_and_their_p99_is_answered_over_the_bus(
    collector: Collector, ask: Ask, js: JetStreamContext
) -> None:
    rng = random.Random(3)
    latencies = [rng.lognormvariate(5.5, 0.6) for _ in range(2000)]
    now = datetime.now(UTC)
    start = now - timedelta(seconds=50)
    rows = [
        ("api.latency_ms", v, {"route": "/claims"}, start + timedelta(milliseconds=20 * i))
        for i, v in enumerate(latencies)
    ]
    async with collector() as service:
        await publish_many(js, [pushed(rows[i : i + 500]) for i in range(0, 2000, 500)])

        async def stored() -> float:
            return counted(service, "hms_metrics_samples_stored_total") >= 2000

        await wait_until(stored, timeout=20, message="2000 samples stored")
        query = {"series": 'api.latency_ms{route="/claims"}', "range_s": 60, "step_s": 60}
        [p99] = values(await ask(**query, fn="p99", end=now))
        assert p99 == pytest.approx(statistics.quantiles(latencies, n=100, method="inclusive")[98])
        assert values(await ask(**query, fn="count", end=now)) == [2000.0]
        # another namespace sees none of it
        assert (await ask("ssa", **query, fn="count", end=now)).series == ()
        bad = await ask(series="api.latency_ms{route=~'.*'}")
        assert "matchers" in (bad.error or "")


async def test_bad_input_is_refused_with_its_reason_and_the_good_rest_is_stored(
    collector: Collector, ask: Ask, nc: Client, js: JetStreamContext
) -> None:
    now = datetime.now(UTC)
    good = pushed([("q.depth", 1.0, {}, now)])
    body = json.loads(good.model_dump_json())
    body["event_id"] = "nan-one"
    body["samples"].append(
        {
            "name": "q.depth",
            "value": "NaN",
            "labels": {},
            "observed_at": body["samples"][0]["observed_at"],
        }
    )
    nan_batch = json.dumps(body).replace('"NaN"', "NaN").encode()
    async with collector(
        namespaces=NS, max_batch_samples=50, max_series_per_namespace=5
    ) as service:
        subject = good.subject()
        # one NaN among good samples: the sample goes, the batch stays
        await js.publish(subject, nan_batch, headers={"Nats-Msg-Id": "nan-one"})
        # a batch that claims another namespace than its subject's
        other = pushed([("q.depth", 2.0, {}, now)], namespace="ssa")
        await js.publish(subject, other.model_dump_json().encode())
        # a namespace this collector does not take
        await publish(js, pushed([("q.depth", 3.0, {}, now)], namespace="ssa"))
        # an oversized batch
        many: Rows = [("q.len", float(i), {}, now - timedelta(seconds=i)) for i in range(60)]
        await publish(js, pushed(many))
        # a label explosion: 5 series at most per namespace (q.depth is one already)
        explosion = [("user.hits", 1.0, {"user": f"u{i}"}, now) for i in range(10)]
        await publish(js, pushed(explosion))
        # not a sample batch at all
        await js.publish(subject, b"{not json")

        letters = await dead_letters(js, "ops.metric.*.portal", 4)
        reasons = sorted(m.headers["Hms-Dlq-Reason"] for m in letters if m.headers)
        assert "Invalid JSON" in reasons[0]
        assert [r.split(":")[0] for r in reasons[1:]] == [
            "namespace_mismatch",
            "oversized_batch",
            "unknown_namespace",
        ]

        async def refused() -> bool:
            return (
                counted(service, "hms_metrics_samples_rejected_total", reason="non_finite") == 1
                and counted(service, "hms_metrics_samples_rejected_total", reason="series_limit")
                == 6
            )

        await wait_until(refused, timeout=20, message="the refused samples counted")
        for reason in ("namespace_mismatch", "unknown_namespace", "oversized_batch"):
            assert counted(service, "hms_metrics_batches_rejected_total", reason=reason) == 1
        # the good sample of the NaN batch and 4 of the 10 new series went in
        end = now + timedelta(seconds=1)
        assert values(await ask(series="q.depth", fn="count", range_s=60, step_s=60, end=end)) == [
            1.0
        ]
        hits = await ask(series="user.hits", fn="count", range_s=60, step_s=60, end=end)
        assert len(hits.series) == 4
        # and the collector goes on storing
        await publish(js, pushed([("q.depth", 5.0, {}, now + timedelta(milliseconds=1))]))

        async def two() -> bool:
            got = await ask(series="q.depth", fn="count", range_s=60, step_s=60, end=end)
            return values(got) == [2.0]

        await wait_until(two, timeout=20, message="the next batch stored")
        info = await js.consumer_info(specs.METRICS.name, specs.METRICS_STORE.durable)
        assert (info.num_ack_pending, info.num_pending) == (0, 0)


async def test_a_pushed_series_expires_after_its_ttl_unless_pushed_again(
    collector: Collector, ask: Ask, js: JetStreamContext
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(start)
    async with collector(clock=clock, scrape=False, prune_every_s=3600) as service:
        await publish(js, pushed([("deploy.version", 142.0, {}, start)], ttl_s=60))
        await publish(js, pushed([("queue.depth", 7.0, {}, start)], source="other"))
        q = {"range_s": 600, "step_s": 60}

        async def both() -> bool:
            return counted(service, "hms_metrics_samples_stored_total") == 2

        await wait_until(both, timeout=20, message="both stored")
        await clock.advance(30)
        assert values(await ask(series="deploy.version", fn="last", **q)) == [142.0]
        await clock.advance(31)  # 61 s after its last push
        assert (await ask(series="deploy.version", fn="last", **q)).series == ()
        assert values(await ask(series="queue.depth", fn="last", **q)) == [7.0]
        # pushed again: back
        await publish(js, pushed([("deploy.version", 143.0, {}, clock.now())], ttl_s=60))

        async def back() -> bool:
            return values(await ask(series="deploy.version", fn="last", **q))[-1] == 143.0

        await wait_until(back, timeout=20, message="the series pushed again")


async def test_a_malformed_or_oversized_query_gets_an_error_not_a_timeout(
    nc: Client, collector: Collector
) -> None:
    async with collector(scrape=False):
        reply = await nc.request(subjects.QUERY_METRICS.subject(NS), b'{"series": 5}', timeout=10)
        result = MetricQueryResult.model_validate_json(reply.data)
        assert "series" in (result.error or "")
        reply = await nc.request(subjects.QUERY_METRICS.subject(NS), b"x" * 70_000, timeout=10)
        assert "at most" in (MetricQueryResult.model_validate_json(reply.data).error or "")


class CrashAfterCommit(SqliteStore):
    """Commits the first write, then fails as a process dying before its ack would."""

    crashed = False

    async def write(self, batches: Sequence[StoredBatch]) -> int:
        stored = await super().write(batches)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("died between commit and ack")
        return stored


async def test_a_batch_redelivered_after_its_commit_is_stored_once(
    collector: Collector, ask: Ask, js: JetStreamContext, tmp_path: Path
) -> None:
    store = CrashAfterCommit(tmp_path / "crash.sqlite3")
    now = datetime.now(UTC)
    rows: Rows = [("jobs.items", 1.0, {}, now - timedelta(milliseconds=i)) for i in range(100)]
    async with collector(scrape=False, store=store):
        await publish(js, pushed(rows))

        async def acked() -> bool:
            info = await js.consumer_info(specs.METRICS.name, specs.METRICS_STORE.durable)
            return store.crashed and (info.num_ack_pending, info.num_pending) == (0, 0)

        await wait_until(acked, timeout=20, message="the redelivery acked")
        got = await ask(series="jobs.items", fn="sum", range_s=60, step_s=60, end=now)
        assert values(got) == [100.0]
    # the minute rollups, which add up, counted every sample once
    with sqlite3.connect(tmp_path / "crash.sqlite3") as db:
        assert db.execute("SELECT sum(count), sum(sum) FROM rollup").fetchone() == (100, 100.0)
