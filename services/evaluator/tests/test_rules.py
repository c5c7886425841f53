"""Rules over streaming windows: the documents' rule, aggregations, matchers, no-data and a
restore mid-pending, with time given by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from hms_contracts import AlertFiring, AlertResolved
from hms_contracts.config import Alert, parse_object
from hms_evaluator.core.rules import Announcement, RuleEngine
from hms_evaluator.core.samples import Sample
from hms_evaluator.core.samples import sample as make_sample

NS = "usds_unemployment"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def rule(**fields: Any) -> Alert:
    doc = {"kind": "alert", "namespace": NS, "name": "sla_latency_breach"}
    obj = parse_object({**doc, "metric": "api.latency_p99", "condition": "> 1000", **fields})
    assert isinstance(obj, Alert)
    return obj


def sample(value: float, t: float, name: str = "api.latency_p99", **labels: str) -> Sample:
    return make_sample(name, value, datetime.fromtimestamp(t, UTC), labels)


def feed(engine: RuleEngine, t: float, *samples: Sample) -> list[Announcement]:
    return engine.evaluate(engine.ingest(NS, list(samples)), t)


def kinds(out: list[Announcement]) -> list[str]:
    return [a.change for a in out]


def test_the_documents_rule_goes_pending_fires_after_five_minutes_and_resolves() -> None:
    engine = RuleEngine()
    engine.set_rules([rule(window="5m")], T0)
    assert feed(engine, T0, sample(1450, T0)) == []
    [b] = engine.bindings()
    assert b.state.phase == "pending"
    for minute in range(1, 5):
        t = T0 + 60 * minute
        assert feed(engine, t, sample(1400, t)) == []
    t = T0 + 300
    [fired] = feed(engine, t, sample(1300, t))
    assert isinstance(fired.event, AlertFiring)
    assert fired.event.subject() == f"ops.alert.{NS}.firing"
    assert fired.event.started_at == datetime.fromtimestamp(T0, UTC)
    assert (fired.event.value, fired.event.for_s) == (1300, 300)
    t += 30
    [resolved] = feed(engine, t, sample(900, t))
    assert isinstance(resolved.event, AlertResolved)
    assert resolved.event.fingerprint == fired.event.fingerprint


def test_a_for_zero_quantile_rule_fires_on_the_breaching_batch() -> None:
    engine = RuleEngine()
    engine.set_rules([rule(metric="api.latency_ms", aggregation="p99", window="1m")], T0)
    fast = [sample(100 + i % 50, T0 + i * 0.1, "api.latency_ms") for i in range(500)]
    assert feed(engine, T0 + 50, *fast) == []
    slow = [sample(5000, T0 + 50 + i * 0.01, "api.latency_ms") for i in range(20)]
    assert kinds(feed(engine, T0 + 51, *slow)) == ["fired"]


def test_each_matching_series_is_its_own_alert_and_others_are_ignored() -> None:
    engine = RuleEngine()
    engine.set_rules([rule(matchers=['route=~"/claims.*"'], **{"for": "0s"})], T0)
    out = feed(
        engine,
        T0,
        sample(2000, T0, route="/claims"),
        sample(2000, T0, route="/claims/7"),
        sample(2000, T0, route="/health"),
        sample(2000, T0, name="other.metric", route="/claims"),
    )
    assert sorted(a.event.labels["route"] for a in out) == ["/claims", "/claims/7"]
    assert len({a.event.fingerprint for a in out}) == 2
    assert engine.ingested == 2


def test_a_histogram_rule_reads_its_buckets() -> None:
    engine = RuleEngine()
    engine.set_rules(
        [rule(metric="http.seconds", histogram=True, aggregation="p99", condition="> 1")], T0
    )
    bounds = ["0.5", "1", "2", "+Inf"]
    out: list[Announcement] = []
    for i, t in enumerate((T0, T0 + 15, T0 + 30)):
        counts = {"0.5": 10 * i, "1": 20 * i, "2": 100 * i, "+Inf": 100 * i}
        batch = [sample(counts[le], t, "http.seconds_bucket", le=le) for le in bounds]
        out += feed(engine, t, *batch)
    [fired] = out
    assert 1 < fired.event.value <= 2
    assert "le" not in fired.event.labels


def test_no_data_ok_resolves_alert_fires_and_keep_state_holds() -> None:
    outcomes = {}
    for policy in ("ok", "alert", "keep_state"):
        engine = RuleEngine()
        engine.set_rules([rule(window="1m", no_data=policy, **{"for": "0s"})], T0)
        first = kinds(feed(engine, T0, sample(2000, T0)))
        later = kinds(engine.tick(T0 + 120))  # a minute past the last sample
        [b] = [b for b in engine.bindings() if not b.placeholder]
        outcomes[policy] = (first, later, b.state.phase)
    assert outcomes == {
        "ok": (["fired"], ["resolved"], "inactive"),
        "alert": (["fired"], [], "firing"),
        "keep_state": (["fired"], [], "firing"),
    }


def test_a_rule_without_any_series_alerts_on_no_data_only_when_asked() -> None:
    quiet, loud = RuleEngine(), RuleEngine()
    quiet.set_rules([rule(window="1m")], T0)
    loud.set_rules([rule(window="1m", no_data="alert", **{"for": "2m"})], T0)
    assert quiet.tick(T0) == []
    assert quiet.tick(T0 + 600) == []
    assert loud.tick(T0) == []
    [fired] = loud.tick(T0 + 120)
    assert "no data" in fired.event.summary
    assert kinds(feed(loud, T0 + 130, sample(5, T0 + 130, route="/claims"))) == []
    assert kinds(loud.tick(T0 + 131)) == ["resolved"]  # data again: the stand-in resolves


def test_restored_state_neither_resets_nor_fires_early() -> None:
    before = RuleEngine()
    alert = rule(window="10m")
    before.set_rules([alert], T0)
    for minute in range(9):  # pending from T0, last sample at minute 8
        t = T0 + 60 * minute
        assert feed(before, t, sample(1500, t)) == []
    stored = before.drain_dirty()
    after = RuleEngine()
    after.restore(stored)
    after.set_rules([alert], T0 + 480)
    t = T0 + 540
    assert feed(after, t, sample(1500, t)) == []  # minute 9: still pending
    t = T0 + 600
    [fired] = feed(after, t, sample(1500, t))
    assert fired.event.started_at == datetime.fromtimestamp(T0, UTC)


def test_a_firing_alert_whose_series_went_quiet_while_down_resolves_after_restore() -> None:
    before = RuleEngine()
    alert = rule(window="1m", **{"for": "0s"})
    before.set_rules([alert], T0)
    assert kinds(feed(before, T0, sample(1500, T0))) == ["fired"]
    after = RuleEngine()
    after.restore(before.drain_dirty())
    after.set_rules([alert], T0 + 600)
    assert kinds(after.tick(T0 + 600)) == ["resolved"]


def test_a_removed_rule_resolves_its_firing_alerts() -> None:
    engine = RuleEngine()
    engine.set_rules([rule(**{"for": "0s"})], T0)
    assert kinds(feed(engine, T0, sample(1500, T0))) == ["fired"]
    assert kinds(engine.set_rules([], T0 + 1)) == ["resolved"]
    assert list(engine.bindings()) == []


def test_unreadable_samples_of_watched_metrics_are_counted_not_fatal() -> None:
    engine = RuleEngine()
    engine.set_rules([rule(**{"for": "0s"})], T0)
    bad = [
        make_sample("api.latency_p99", float("inf"), "2026-03-01T12:00:00Z"),
        make_sample("api.latency_p99", 5, "yesterday"),
        make_sample("api.latency_p99", 5, "2026-03-01T12:00:00"),  # no time zone
        Sample("api.latency_p99", 5, "2026-03-01T12:00:00Z", msgspec.Raw(b'{"route": 7}')),
    ]
    assert feed(engine, T0, *bad) == []
    assert engine.dropped == 4
    assert engine.ingested == 0
