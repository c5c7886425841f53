"""Subjects: builders, the wildcard matcher, streams capturing every event, subject lookup."""

from __future__ import annotations

import re

import hms_contracts as ev
import pytest
from hms_contracts import specs, subjects
from hms_contracts.bus import BusEvent
from hms_contracts.errors import SubjectError
from hms_contracts.subjects import Family
from hypothesis import assume, given
from hypothesis import strategies as st

# Heartbeats are core NATS on purpose: the registry is a KV bucket, not a stream.
CORE_ONLY: set[type[BusEvent]] = {ev.ServiceHeartbeat}

NAMESPACE_RULE = re.compile(r"[a-z][a-z0-9_]{0,62}")
namespaces = st.from_regex(NAMESPACE_RULE, fullmatch=True)
rest_tokens = st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True)
bad_tokens = st.one_of(
    st.just(""),
    st.just("*"),
    st.just(">"),
    st.text(min_size=1, max_size=10).filter(lambda t: " " in t or "*" in t or ">" in t),
    st.text(alphabet="abc", min_size=65, max_size=80),
)
one_token_families = st.sampled_from([f for f in subjects.FAMILIES if f.rest_tokens == 1])


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("job.run.*.>", "job.run.ns.q", True),
        ("job.run.*.>", "job.run.ns.q.deeper", True),
        ("job.run.*.>", "job.run.ns", False),
        ("sla.breach.*", "sla.breach.ns", True),
        ("sla.breach.*", "sla.breach.ns.extra", False),
        ("ops.alert.*.firing", "ops.alert.ns.resolved", False),
        ("dlq.>", "dlq.job.run.ns.q", True),
        ("a.>.b", "a.x.b", False),
    ],
)
def test_matches_follows_nats_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert subjects.matches(pattern, subject) is expected


def test_every_event_subject_lies_within_a_stream(event: BusEvent) -> None:
    captured_by = [
        spec.name
        for spec in specs.STREAMS
        if any(subjects.matches(p, event.subject()) for p in spec.subjects)
    ]
    assert len(captured_by) == (0 if type(event) in CORE_ONLY else 1), captured_by


def test_event_subject_lies_within_its_own_pattern_and_namespace(event: BusEvent) -> None:
    assert subjects.matches(type(event).subject_pattern(), event.subject())
    assert event.family.namespace_of(event.subject()) in (event.namespace, "system")


def test_event_for_subject_maps_each_subject_back_to_its_model(event: BusEvent) -> None:
    assert ev.event_for_subject(event.subject()) is type(event)


@pytest.mark.parametrize(
    "subject", ["dlq.job.run.ns.q", "ops.alert.ns.pending", "sla.breach.ns.extra", "job.run.ns"]
)
def test_event_for_subject_knows_no_model_for_other_subjects(subject: str) -> None:
    assert ev.event_for_subject(subject) is None


def test_decode_validates_a_message_on_its_subject(event: BusEvent) -> None:
    assert ev.decode(event.subject(), event.model_dump_json()) == event


def test_decode_rejects_an_event_on_another_namespace() -> None:
    event = ev.SlaBreached.create(
        namespace="usds_unemployment",
        occurred_at="2025-01-01T05:00:00Z",
        reason="objective_violated",
        slo_id="filings_within_2s",
        detail="98.1 % < 99 %",
    )
    with pytest.raises(SubjectError, match=re.escape("arrived on 'sla.breach.other_ns'")):
        ev.decode("sla.breach.other_ns", event.model_dump_json())


@given(family=one_token_families, namespace=namespaces, token=rest_tokens)
def test_valid_tokens_round_trip_through_namespace_of(
    family: Family, namespace: str, token: str
) -> None:
    subject = family.subject(namespace, token)
    assert family.namespace_of(subject) == namespace
    assert subjects.matches(family.wildcard(), subject)
    assert subjects.matches(family.wildcard(namespace), subject)


@given(family=one_token_families, namespace=namespaces, token=bad_tokens)
def test_invalid_rest_tokens_raise_subject_error(
    family: Family, namespace: str, token: str
) -> None:
    with pytest.raises(SubjectError):
        family.subject(namespace, token)


@given(family=st.sampled_from(subjects.FAMILIES), namespace=st.text(max_size=70))
def test_invalid_namespaces_raise_subject_error(family: Family, namespace: str) -> None:
    assume(not NAMESPACE_RULE.fullmatch(namespace))
    with pytest.raises(SubjectError, match="namespace"):
        family.subject(namespace, "x" if family.rest_tokens else "")
