"""A namespace client's permissions cover its own subjects and nothing of another namespace."""

from __future__ import annotations

import pytest
from hms_contracts import subjects, topology
from hms_contracts.errors import SubjectError
from hms_testing.samples import all_events

OWN, OTHER = "usds_unemployment", "ssa"


def _allowed(patterns: list[str], subject: str) -> bool:
    return any(subjects.matches(p, subject) for p in patterns)


def test_a_namespace_client_may_touch_no_subject_of_another_namespace() -> None:
    perms = topology.namespace_permissions(OWN, durables=("my-app",))
    for event in all_events():
        other = event.model_copy(update={"namespace": OTHER}).subject()
        for direction in ("publish", "subscribe"):
            assert not _allowed(perms[direction]["allow"], other), (direction, other)
    every = [*perms["publish"]["allow"], *perms["subscribe"]["allow"]]
    assert all(OWN in p or p.startswith("$JS.FC.") for p in every), every


def test_a_namespace_client_publishes_only_metrics_its_events_and_its_config_audit() -> None:
    allow = topology.namespace_permissions(OWN)["publish"]["allow"]
    published = {type(e).__name__ for e in all_events() if _allowed(allow, e.subject())}
    assert published == {"MetricSampleBatch", "AgencyEvent", "ConfigChanged"}


def test_a_durable_is_granted_by_exact_consumer_names_and_filters() -> None:
    perms = topology.namespace_permissions(OWN, durables=("my-app",))
    creates = [p for p in perms["publish"]["allow"] if p.startswith("$JS.API.CONSUMER.CREATE.")]
    assert (
        "$JS.API.CONSUMER.CREATE.INCIDENTS.usds_unemployment-my-app-incidents"
        + (".ops.incident.usds_unemployment.>")
        in creates
    )
    assert [p for p in creates if ".*." in p] == [
        "$JS.API.CONSUMER.CREATE.KV_hms_config.*.$KV.hms_config.usds_unemployment.>"
    ]


@pytest.mark.parametrize("namespace", ["USDS", "a.b", "*", ">", "ns-1"])
def test_an_invalid_namespace_gets_no_permissions(namespace: str) -> None:
    with pytest.raises(SubjectError, match="namespace"):
        topology.namespace_permissions(namespace)
