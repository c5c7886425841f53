"""The console's pure decisions: roles, plain English, badge colours, the window, rates, SVG."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from hms_console.core import svg
from hms_console.core.limits import RateLimit
from hms_console.core.plain import Compliance, badge_colour, good_side, pct
from hms_console.core.policy import ROUTES, Principal, allowed
from hms_console.core.window import MetricWindow, bucketed, percentile


def p(role: str, ns: str = "a") -> Principal:
    return Principal("id", role, role, ns)  # type: ignore[arg-type]


def test_overrides_are_the_on_call_persons_or_an_admins() -> None:
    assert not allowed(p("responder"), "override", "a")
    assert allowed(p("responder"), "override", "a", on_call=True)
    assert not allowed(p("viewer"), "override", "a", on_call=True)  # on call, but read-only
    assert allowed(p("admin"), "override", "a")
    assert not allowed(p("admin", "b"), "override", "a", on_call=True)


def test_roles_rank_and_stay_in_their_namespace() -> None:
    assert allowed(p("author"), "respond", "a")
    assert not allowed(p("responder"), "author", "a")
    assert not allowed(p("admin", "b"), "read", "a")
    assert allowed(Principal("id", "root", "admin", "*"), "admin", "a")
    assert not allowed(None, "read", "a")
    assert allowed(None, "public", None)


def test_every_state_change_needs_more_than_reading() -> None:
    for (method, _), need in ROUTES.items():
        if method in ("POST", "PUT", "DELETE"):
            assert need != "read"


def test_a_promise_reads_in_plain_english() -> None:
    c = Compliance("reg_sla", "filing.latency", 993, 1000, 0.99, "<=", 2000, "ms")
    assert c.sentence() == (
        "99.3 % of filing.latency samples at most 2000 ms — meets the target (target 99 %)"
    )
    assert c.colour == "green"
    assert Compliance("x", "m", 0, 0, 0.99, "<=", 1, "ms").sentence().startswith("No m samples")


@pytest.mark.parametrize(
    ("ratio", "breached", "colour"),
    [(None, False, "grey"), (0.995, False, "green"), (0.9905, False, "yellow"),
     (0.98, False, "red"), (1.0, True, "red")],
)  # fmt: skip
def test_badge_colours(ratio: float | None, breached: bool, colour: str) -> None:
    assert badge_colour(ratio, 0.99, breached) == colour


def test_percent_never_rounds_up_to_a_target_it_misses() -> None:
    assert pct(0.98999) == "98.9 %"
    assert good_side(">") == "<="


def test_the_window_keeps_its_span_and_order() -> None:
    w = MetricWindow(span_s=60, max_points=100)
    w.add("m", 1.0, 100.0, "ms", {})
    w.add("m", 3.0, 130.0, "ms", {})
    w.add("m", 2.0, 120.0, "ms", {})  # late: put in its place
    w.add("m", 4.0, 170.0, "ms", {})  # 100 falls out of the 60 s span
    assert w.points("m") == [(120.0, 2.0), (130.0, 3.0), (170.0, 4.0)]
    assert w.latest("m") == 4.0
    assert percentile([5, 1, 3], 0.5) == 3
    rows = bucketed(w.points("m"), 110, 170, 2)
    assert [r[2] for r in rows] == [3.0, 4.0]


def test_the_window_bounds_its_series() -> None:
    w = MetricWindow(span_s=60, max_points=10, max_series=2)
    for i in range(3):
        w.add("m", 1.0, 100.0, "ms", {"pod": str(i)})
    assert len(w.series) == 2
    assert w.refused == 1


def test_a_token_bucket_refuses_bursts_and_refills() -> None:
    limit = RateLimit(rate=1.0, burst=2.0)
    assert limit.take("t", 0.0) == 0.0
    assert limit.take("t", 0.0) == 0.0
    assert limit.take("t", 0.0) == pytest.approx(1.0)
    assert limit.take("other", 0.0) == 0.0
    assert limit.take("t", 1.0) == 0.0


def test_svg_is_well_formed_and_escapes_text() -> None:
    for drawing in (
        svg.badge("a<b", "99 % & more", "green"),
        svg.gauge(0.02, "errors <x>"),
        svg.latency_graph("m&m", "ms", [(0.0, 1.0, 2.0), (30.0, 2.0, 5.0)], 0, 60, threshold=4),
        svg.latency_graph("empty", "ms", [], 0, 60),
    ):
        root = ElementTree.fromstring(drawing)
        assert root.tag.endswith("svg")
