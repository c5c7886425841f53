"""SLO budgets and burn rates on synthetic traffic, time given by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hms_contracts.config import Slo
from hms_contracts.config.slos import DEFAULT_BURN_WINDOWS
from hms_evaluator.core.samples import Sample, sample
from hms_evaluator.core.slo import SloBook, SloTracker, burn_rate

NS = "usds_unemployment"
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def counters_slo(**fields: Any) -> Slo:
    doc = {"good": "filings.ok", "total": "filings.all", **fields}
    return Slo(namespace=NS, name="filings", objective=0.99, **doc)


class Traffic:
    """Two counters driven minute by minute."""

    def __init__(self, tracker: SloTracker) -> None:
        self.tracker = tracker
        self.good = self.total = 0.0
        self.t = T0
        tracker.add("good", {}, self.t, 0.0)
        tracker.add("total", {}, self.t, 0.0)

    def minutes(self, n: int, per_minute: float, error_ratio: float) -> None:
        for _ in range(n):
            self.t += 60
            self.total += per_minute
            self.good += per_minute * (1 - error_ratio)
            self.tracker.add("good", {}, self.t, self.good)
            self.tracker.add("total", {}, self.t, self.total)


def test_burn_rate_is_the_error_ratio_over_the_budget() -> None:
    assert burn_rate(990, 1000, 0.99) == pytest.approx(1.0)
    assert burn_rate(856, 1000, 0.99) == pytest.approx(14.4)
    assert burn_rate(0, 0, 0.99) is None


def test_a_fast_burn_pages_within_minutes_and_resolves_when_it_stops() -> None:
    tracker = SloTracker(counters_slo(burn_alerts=DEFAULT_BURN_WINDOWS[:2]))  # the two pages
    traffic = Traffic(tracker)
    traffic.minutes(360, 100, 0.001)  # six healthy hours
    fired, standing = tracker.evaluate(traffic.t)
    assert fired == []
    assert standing.status == "green"
    traffic.minutes(5, 100, 0.5)  # 50 % errors: 50x burn on 5m, ~4x on 1h
    out, _ = tracker.evaluate(traffic.t)
    assert out == []  # the long window has not caught up yet
    traffic.minutes(15, 100, 0.5)  # 20 minutes: 16.7 % errors over the hour
    out, standing = tracker.evaluate(traffic.t)
    assert [(a.window.label, a.change) for a in out] == [("1h/5m 14.4x", "fired")]
    event = out[0].event
    assert event.subject() == f"ops.alert.{NS}.firing"
    assert (event.severity, event.threshold, event.labels["slo"]) == ("critical", 14.4, "filings")
    assert standing.burning == ("1h/5m 14.4x",)
    traffic.minutes(6, 100, 0.0)  # the short window clears first: the page resolves fast
    out, _ = tracker.evaluate(traffic.t)
    assert [(a.window.label, a.change) for a in out] == [("1h/5m 14.4x", "resolved")]


def test_low_traffic_does_not_page_on_a_single_failure() -> None:
    tracker = SloTracker(counters_slo(min_events=10, burn_alerts=DEFAULT_BURN_WINDOWS[:1]))
    traffic = Traffic(tracker)
    traffic.minutes(60, 0.1, 0.0)  # six events an hour
    traffic.minutes(5, 0.2, 1.0)  # then one failure: 100 % errors on both windows
    out, _ = tracker.evaluate(traffic.t)
    assert out == []
    busy = SloTracker(counters_slo(min_events=0, burn_alerts=DEFAULT_BURN_WINDOWS[:1]))
    traffic = Traffic(busy)
    traffic.minutes(60, 0.1, 0.0)
    traffic.minutes(5, 0.2, 1.0)
    out, _ = busy.evaluate(traffic.t)
    assert [a.window.label for a in out] == ["1h/5m 14.4x"]


def test_the_badge_turns_red_when_the_budget_is_spent() -> None:
    tracker = SloTracker(counters_slo(window="1d", burn_alerts=[]))
    traffic = Traffic(tracker)
    traffic.minutes(600, 100, 0.005)  # half the budget
    _, standing = tracker.evaluate(traffic.t)
    assert standing.compliance == pytest.approx(0.995)
    assert standing.budget_left == pytest.approx(0.5)
    assert standing.status == "green"
    traffic.minutes(600, 100, 0.012)
    _, standing = tracker.evaluate(traffic.t)
    assert standing.budget_left < 0.25
    assert standing.status == "yellow"
    traffic.minutes(600, 100, 0.03)
    _, standing = tracker.evaluate(traffic.t)
    assert standing.status == "red"
    event = tracker.status_event(standing, traffic.t)
    assert event.subject() == f"ops.slo.{NS}.status"
    assert event.status == "red"


def test_a_histogram_slo_counts_the_threshold_bucket_as_good_and_a_counter_reset_as_new() -> None:
    histogram: dict[str, Any] = {"metric": "f.seconds", "threshold": 2, "burn_alerts": ()}
    slo = Slo(namespace=NS, name="f", objective=0.9, **histogram)
    book = SloBook()
    [tracker] = book.set_slos([slo])

    def at(t: float, good: float, total: float, other: float) -> list[Sample]:
        stamp = datetime.fromtimestamp(t, UTC)
        rows = [("2", good), ("+Inf", total), ("1", other)]
        return [sample("f.seconds_bucket", v, stamp, {"le": le}) for le, v in rows]

    parse = datetime.fromisoformat
    book.ingest(NS, at(T0, 0, 0, 0), lambda s: parse(s).timestamp())
    book.ingest(NS, at(T0 + 60, 80, 100, 10), lambda s: parse(s).timestamp())
    book.ingest(NS, at(T0 + 120, 10, 10, 1), lambda s: parse(s).timestamp())  # restarted
    _, standing = tracker.evaluate(T0 + 120)
    assert (standing.good, standing.total) == (90, 110)
