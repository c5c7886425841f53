"""The ``scale_policy`` kind: KEDA's and the HPA's defaults, and invalid policies refused with
a message that names the field and what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from hms_contracts.config import ScalePolicy, parse_object, parse_series
from pydantic import ValidationError

NS = "usds_unemployment"


def policy(**fields: Any) -> ScalePolicy:
    obj = parse_object({"kind": "scale_policy", "namespace": NS, "name": "gateway", **fields})
    assert isinstance(obj, ScalePolicy)
    return obj


def refusal(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        policy(**fields)
    return str(caught.value)


def test_a_policy_has_the_keda_and_hpa_defaults() -> None:
    p = policy(max=5)
    assert (p.min, p.max, p.target_backlog_per_worker, p.activation_backlog) == (0, 5, 10, 0)
    assert p.tolerance == 0.1
    assert p.poll_interval_s == 1.0
    assert p.backend == "local"
    assert p.scale_up.stabilization_s == 0.0
    assert p.scale_down.stabilization_s == 300.0
    assert (p.scale_up.workers, p.scale_up.percent, p.scale_up.period_s) == (4, 100, 15.0)
    assert p.idle_to_zero_s == 300.0
    assert (p.stream, p.consumer) == ("JOB_RUNS", "worker_pool")
    assert p.key() == f"{NS}.scale_policy.gateway"


def test_a_5xx_trigger_reads_its_series_and_labels() -> None:
    p = policy(
        max=10,
        triggers=[{"series": 'gateway.http_5xx_rate{route="/claims", code="503"}', "threshold": 5}],
    )
    [trigger] = p.triggers
    assert trigger.metric == "gateway.http_5xx_rate"
    assert trigger.labels == {"route": "/claims", "code": "503"}
    assert trigger.aggregation == "avg"
    assert trigger.window_s == 60.0
    assert parse_object(p.document()) == p


def test_min_above_max_is_refused() -> None:
    assert "min 6 is more than max 5" in refusal(min=6, max=5)


def test_an_unknown_backend_is_refused_with_the_known_ones() -> None:
    message = refusal(max=5, backend="nomad")
    assert "backend 'nomad' is unknown; expected one of local, docker, kubernetes" in message


def test_a_backend_without_its_target_is_refused() -> None:
    assert "backend kubernetes needs kubernetes" in refusal(max=5, backend="kubernetes")
    assert "backend docker needs docker" in refusal(max=5, backend="docker")


@pytest.mark.parametrize(
    ("series", "why"),
    [
        ("gateway http_5xx", "must be a metric name"),
        ("gateway.*.5xx", "token '*'"),
        ('gateway.5xx{route=~"/c.*"}', 'must be label="value"'),
        ("gateway.5xx{route}", 'must be label="value"'),
        ('gateway.5xx{a="1",a="2"}', "matched twice"),
        ("", "must be a metric name"),
    ],
)
def test_a_trigger_on_a_malformed_series_is_refused(series: str, why: str) -> None:
    message = refusal(max=5, triggers=[{"series": series, "threshold": 1}])
    assert "triggers.0.series" in message
    assert why in message
    with pytest.raises(ValueError, match="series"):
        parse_series(series)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"max": 0}, "max"),
        ({"max": 5, "target_backlog_per_worker": 0}, "target_backlog_per_worker"),
        ({"max": 5, "tolerance": 1.5}, "tolerance"),
        ({"max": 5, "scale_up": {"stabilization": "soon"}}, "scale_up.stabilization"),
        ({"max": 5, "scale_down": {"stabilization": "1m", "percent": 0}}, "scale_down.percent"),
        ({"max": 5, "poll_interval": "0s"}, "poll_interval"),
        ({"max": 5, "triggers": [{"series": "a.b", "threshold": 0}]}, "triggers.0.threshold"),
        (
            {"max": 5, "triggers": [{"series": "a.b", "threshold": 1, "aggregation": "p99"}]},
            "triggers.0.aggregation",
        ),
    ],
)
def test_each_bad_field_is_named(fields: dict[str, Any], where: str) -> None:
    assert where in refusal(**fields)


def test_a_pool_name_must_be_one_subject_token() -> None:
    assert "ops.scale.<ns>.<pool>" in refusal(max=5, name="a.b")
