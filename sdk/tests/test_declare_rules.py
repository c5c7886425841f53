"""The SDK's Alert takes the rule's fields beyond the documents' four, validated at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hms_contracts.config import Alert as AlertObject
from hms_ops import Alert, InvalidObject


def test_an_alert_declares_for_aggregation_matchers_and_no_data() -> None:
    alert = Alert(
        "slow_claims",
        "api.latency_ms",
        "> 1000",
        "5m",
        aggregation="p99",
        for_="2m",
        keep_firing_for="1m",
        matchers=['route=~"/claims/.*"'],
        no_data="alert",
    )
    [rule] = alert.objects("usds_unemployment")
    assert isinstance(rule, AlertObject)
    assert (rule.aggregate, rule.for_td, rule.keep_firing_td) == (
        "p99",
        timedelta(minutes=2),
        timedelta(minutes=1),
    )
    assert str(rule.matchers[0]) == 'route=~"/claims/.*"'


def test_a_malicious_condition_is_refused_where_it_is_written() -> None:
    with pytest.raises(InvalidObject, match="condition"):
        Alert("x", "api.latency_p99", "> 5; __import__('os')")
