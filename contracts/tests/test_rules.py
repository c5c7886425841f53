"""Alert rules and SLOs as users write them: every part parsed into data, nothing evaluated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hms_contracts.config import Alert, Matcher, Slo, parse_object
from pydantic import ValidationError

NS = "usds_unemployment"


def rule(**fields: Any) -> Alert:
    doc = {"kind": "alert", "namespace": NS, "name": "r", "metric": "api.latency_p99"}
    obj = parse_object({**doc, "condition": "> 1000", **fields})
    assert isinstance(obj, Alert)
    return obj


def test_the_documents_rule_holds_for_its_window_on_the_latest_value() -> None:
    alert = rule(window="5m")
    assert (alert.aggregate, alert.for_td, alert.keep_firing_td) == (
        "last",
        timedelta(minutes=5),
        timedelta(0),
    )
    assert alert.document() == {
        "kind": "alert",
        "namespace": NS,
        "name": "r",
        "metric": "api.latency_p99",
        "condition": "> 1000",
        "window": "5m",
    }


def test_an_aggregated_rule_fires_at_once_unless_it_says_for() -> None:
    assert rule(aggregation="p99", window="5m").for_td == timedelta(0)
    held = rule(aggregation="p99", window="5m", **{"for": "10m"}, keep_firing_for="2m")
    assert (held.for_td, held.keep_firing_td) == (timedelta(minutes=10), timedelta(minutes=2))
    assert rule(window="5m", **{"for": "0s"}).for_td == timedelta(0)
    assert rule(window="5m", **{"for": 0}).for_td == timedelta(0)


def test_a_rule_reads_back_its_own_document_with_for_and_matchers() -> None:
    alert = rule(
        aggregation="p95",
        matchers=['route=~"/claims/.*"', 'env!="staging"'],
        labels={"team": "benefits"},
        no_data="alert",
        severity="warning",
        **{"for": "1m"},
    )
    doc = alert.document()
    assert doc["for"] == "1m"
    assert doc["matchers"] == ['route=~"/claims/.*"', 'env!="staging"']
    assert parse_object(doc) == alert


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ('route="/claims"', {"route": "/claims"}, True),
        ('route="/claims"', {"route": "/claims/1"}, False),
        ('route!="/health"', {}, True),
        ('route=~"/claims/.*"', {"route": "/claims/7"}, True),
        ('route=~"/claims"', {"route": "/claims/7"}, False),  # anchored, as in Prometheus
        ('route!~"/internal.*"', {"route": "/internal/x"}, False),
    ],
)
def test_label_matchers_match_as_prometheus_does(
    text: str, labels: dict[str, str], hit: bool
) -> None:
    assert Matcher.parse(text).matches(labels) is hit


def test_a_mapping_of_matchers_means_equality() -> None:
    assert rule(matchers={"route": "/claims"}).matchers == (
        Matcher(label="route", op="=", value="/claims"),
    )


@pytest.mark.parametrize(
    "condition",
    [
        "> 5; __import__('os')",
        "1 or True",
        "> nan",
        "> NaN",
        "> inf",
        "> -Infinity",
        "> 1e400",
        "> 1_000",
        "> \u0661\u0660\u0660\u0660",  # Arabic-Indic digits, which float() would accept
        "=> 5",
        "> 5 or 1",
        "__import__('os').system('id')",
        "> " + "9" * 100,
        "",
    ],
)
def test_malicious_or_malformed_conditions_are_rejected_with_a_message(condition: str) -> None:
    with pytest.raises(ValidationError) as caught:
        rule(condition=condition)
    error = caught.value.errors()[0]
    assert error["loc"] == ("condition",)
    assert "condition" in error["msg"]


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), float("-inf")])
def test_a_condition_given_as_data_still_needs_a_finite_threshold(threshold: float) -> None:
    with pytest.raises(ValidationError):
        rule(condition={"operator": ">", "threshold": threshold})


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"aggregation": "median"}, "aggregation"),
        ({"no_data": "ignore"}, "no_data"),
        ({"for": "-5m"}, "for"),
        ({"keep_firing_for": "soon"}, "keep_firing_for"),
        ({"matchers": ["route=/claims"]}, "matchers"),
        ({"matchers": ['route=~"("']}, "matchers"),
        ({"histogram": True, "aggregation": "avg"}, "histogram"),
    ],
)
def test_a_bad_rule_names_the_field(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        rule(**fields)
    assert where in str(caught.value)


def test_an_slo_reads_a_percentage_and_the_workbooks_burn_windows() -> None:
    slo = Slo(namespace=NS, name="filings", objective="99 %", metric="f.seconds", threshold=2)  # type: ignore[arg-type]
    assert slo.objective == pytest.approx(0.99)
    assert [(b.label, b.severity) for b in slo.burn_alerts] == [
        ("1h/5m 14.4x", "critical"),
        ("6h/30m 6x", "critical"),
        ("1d/2h 3x", "warning"),
        ("3d/6h 1x", "warning"),
    ]
    assert slo.window_td == timedelta(days=30)
    assert parse_object(slo.document()) == slo


@pytest.mark.parametrize(
    "fields",
    [
        {"metric": "f.seconds"},
        {"good": "f.good"},
        {"metric": "f.seconds", "threshold": 2, "good": "g", "total": "t"},
        {"good": "g", "total": "t", "objective": 100},
        {"good": "g", "total": "t", "objective": "all of them"},
        {"good": "g", "total": "t", "burn_alerts": [{"long": "5m", "short": "1h", "factor": 2}]},
    ],
)
def test_an_slo_needs_one_source_and_a_sane_objective(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_object({"kind": "slo", "namespace": NS, "name": "s", "objective": 99, **fields})
