"""The event models: wire format, immutability, validation messages, deterministic ids."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hms_contracts as ev
import pytest
from hms_contracts.bus import BusEvent
from pydantic import BaseModel, ValidationError

NS = "usds_unemployment"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
Samples = dict[type[BusEvent], BusEvent]


def _payload(event: BusEvent, **changes: Any) -> dict[str, Any]:
    return {**event.model_dump(mode="json"), **changes}


def test_every_event_round_trips_through_json(event: BusEvent) -> None:
    assert type(event).model_validate_json(event.model_dump_json()) == event


def test_every_event_carries_its_deterministic_id(event: BusEvent) -> None:
    assert event.event_id == event.expected_event_id()


def test_events_are_frozen(event: BusEvent) -> None:
    with pytest.raises(ValidationError, match="frozen"):
        event.event_id = "other"  # type: ignore[misc]


def test_events_reject_extra_fields_naming_them(event: BusEvent) -> None:
    with pytest.raises(ValidationError, match=r"surprise\n  Extra inputs are not permitted"):
        type(event).model_validate(_payload(event, surprise=1))


def test_catalogue_lists_every_public_event_model_once(samples: Samples) -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(ev, inspect.isclass)
        if issubclass(obj, BusEvent) and obj is not BusEvent and not obj.__name__.startswith("_")
    }
    assert len(ev.CATALOGUE) == len(set(ev.CATALOGUE))
    assert set(ev.CATALOGUE) == defined
    assert list(samples) == list(ev.CATALOGUE)


def test_every_field_is_described() -> None:
    models: list[type[BaseModel]] = [*ev.CATALOGUE, ev.MetricSample]
    for model in models:
        undescribed = [n for n, f in model.model_fields.items() if not f.description]
        assert undescribed == [], model.__name__


@pytest.mark.parametrize("namespace", ["", "Usds", "usds-unemployment", "9lives", "a.b", "x" * 64])
def test_invalid_namespace_is_rejected_naming_the_field(namespace: str, samples: Samples) -> None:
    event = samples[ev.RunStarted]
    with pytest.raises(ValidationError, match=r"namespace\n  Value error, namespace"):
        ev.RunStarted.model_validate(_payload(event, namespace=namespace))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_sample_values_are_rejected(value: float) -> None:
    with pytest.raises(ValidationError, match=r"value\n  Input should be a finite number"):
        ev.MetricSample(name="api.latency_p99", value=value, observed_at=T0)


def test_non_finite_alert_threshold_is_rejected(samples: Samples) -> None:
    event = samples[ev.AlertFiring]
    with pytest.raises(ValidationError, match=r"threshold\n  Input should be a finite number"):
        ev.AlertFiring.model_validate(_payload(event, threshold="Infinity"))


@pytest.mark.parametrize(
    "name", ["", "api latency", "api..p99", "api.*", "api.>", ".api", "a" * 65]
)
def test_bad_metric_names_are_rejected_naming_the_field(name: str) -> None:
    with pytest.raises(ValidationError, match=r"name\n  Value error, metric name"):
        ev.MetricSample(name=name, value=1.0, observed_at=T0)


def test_naive_times_are_rejected(samples: Samples) -> None:
    event = samples[ev.RunStarted]
    with pytest.raises(ValidationError, match=r"occurred_at\n  Input should have timezone info"):
        ev.RunStarted.model_validate(_payload(event, occurred_at="2025-01-01T00:00:00"))


def test_deterministic_ids_are_stable_across_retries(event: BusEvent) -> None:
    fields = {k: v for k, v in event if k != "event_id"}
    if isinstance(event, ev.AuditRecorded):
        fields = {k: v for k, v in fields.items() if k not in ("sequence", "prev_hash", "hash")}
        assert ev.AuditRecorded.chain(None, **fields) == event
    else:
        assert type(event).create(**fields) == event


def test_one_instant_in_two_offsets_gives_one_id(samples: Samples) -> None:
    event = samples[ev.ScaleDecided]
    shifted = event.occurred_at.astimezone(timezone(timedelta(hours=2)))
    fields = {k: v for k, v in event if k != "event_id"}
    again = ev.ScaleDecided.create(**fields | {"occurred_at": shifted})
    assert again.event_id == event.event_id


def test_create_refuses_an_explicit_event_id() -> None:
    with pytest.raises(TypeError, match="computes event_id"):
        ev.RunProgressed.create(event_id="mine", namespace=NS, occurred_at=T0)


def test_run_id_is_job_at_scheduled_time_in_utc(samples: Samples) -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    assert ev.run_id_for("ssa_re_score", local) == "ssa_re_score@2025-01-01T00:00:00Z"
    scheduled = samples[ev.RunScheduled]
    assert isinstance(scheduled, ev.RunScheduled)
    assert scheduled.run_id == "ssa_re_score@2025-01-01T00:00:00Z"


def test_run_scheduled_rejects_a_run_id_that_is_not_its_slot(samples: Samples) -> None:
    event = samples[ev.RunScheduled]
    with pytest.raises(ValidationError, match="run_id must be"):
        ev.RunScheduled.model_validate(_payload(event, scheduled_at=T0 + timedelta(days=1)))


def test_run_scheduled_rejects_a_foreign_event_id(samples: Samples) -> None:
    event = samples[ev.RunScheduled]
    with pytest.raises(ValidationError, match="event_id must be"):
        ev.RunScheduled.model_validate(_payload(event, event_id="f47ac10b-58cc-4372"))


def test_the_same_run_in_two_namespaces_does_not_dedupe(samples: Samples) -> None:
    event = samples[ev.RunScheduled]
    assert isinstance(event, ev.RunScheduled)
    fields = {k: v for k, v in event if k != "event_id"}
    staging = ev.RunScheduled.create(**fields | {"namespace": "usds_unemployment_staging"})
    assert staging.run_id == event.run_id
    assert staging.event_id != event.event_id


def test_run_events_belong_to_their_job(samples: Samples) -> None:
    event = samples[ev.RunFailed]
    with pytest.raises(ValidationError, match="does not belong to job"):
        ev.RunFailed.model_validate(_payload(event, job_id="other_job"))


def test_progress_cannot_exceed_total(samples: Samples) -> None:
    with pytest.raises(ValidationError, match=r"done \(300\) exceeds total \(250\)"):
        ev.RunProgressed.model_validate(_payload(samples[ev.RunProgressed], done=300))


def test_sla_breach_names_what_broke(samples: Samples) -> None:
    event = samples[ev.SlaBreached]
    with pytest.raises(ValidationError, match="slo_id is required"):
        ev.SlaBreached.model_validate(_payload(event, reason="objective_violated"))
    with pytest.raises(ValidationError, match="job_id and run_id are required"):
        ev.SlaBreached.model_validate(_payload(event, run_id=None))


def test_succeeded_step_must_exit_zero(samples: Samples) -> None:
    event = samples[ev.IncidentStepRan]
    with pytest.raises(ValidationError, match="status succeeded needs exit_code 0"):
        ev.IncidentStepRan.model_validate(_payload(event, exit_code=1))


def test_audit_chain_links_each_record_to_the_previous(samples: Samples) -> None:
    first = samples[ev.AuditRecorded]
    assert isinstance(first, ev.AuditRecorded)
    second = ev.AuditRecorded.chain(
        first, namespace=NS, occurred_at=T0, actor="alice", action="incident.ack", target="inc-1"
    )
    assert (first.sequence, first.prev_hash) == (1, ev.GENESIS_HASH)
    assert (second.sequence, second.prev_hash) == (2, first.hash)
    assert second.hash == second.computed_hash() != first.hash


def test_altered_audit_record_is_rejected(samples: Samples) -> None:
    event = samples[ev.AuditRecorded]
    with pytest.raises(ValidationError, match="the record was altered"):
        ev.AuditRecorded.model_validate(_payload(event, actor="mallory"))
