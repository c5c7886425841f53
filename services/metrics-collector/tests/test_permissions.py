"""Who may ask the collector what: its NATS user answers queries on every namespace's subject
(one reply per request), the console may ask, and a namespace's client may ask about its own
metrics only."""

from __future__ import annotations

from hms_contracts import subjects, topology


def test_the_collector_answers_queries_and_replies_once_per_request() -> None:
    perms = topology.nats_permissions(topology.service("metrics-collector"))
    assert subjects.QUERY_METRICS.wildcard() in perms["subscribe"]["allow"]
    assert perms["allow_responses"] == {"max": 1, "expires": "1m"}
    # it consumes its own durable and follows both kinds of targets
    assert "$JS.API.CONSUMER.MSG.NEXT.METRICS.metrics_collector" in perms["publish"]["allow"]
    assert topology.service("metrics-collector").config_kinds == ("metric", "scrape_target")


def test_only_a_service_that_serves_requests_may_answer_them() -> None:
    for svc in topology.SERVICES:
        answers = "allow_responses" in topology.nats_permissions(svc)
        assert answers == bool(svc.serves), svc.name
    assert topology.service("metrics-collector").serves


def test_the_console_may_ask_and_a_namespace_client_only_about_its_own() -> None:
    console = topology.nats_permissions(topology.service("console"))
    assert subjects.QUERY_METRICS.wildcard() in console["publish"]["allow"]
    own = topology.namespace_permissions("usds_unemployment")["publish"]["allow"]
    assert "ops.query.metrics.usds_unemployment" in own
    assert not any(p.startswith("ops.query.metrics.") and p.endswith("*") for p in own)
