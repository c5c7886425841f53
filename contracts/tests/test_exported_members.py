"""The public surface of hms_contracts is deliberate: everything public is in __all__."""

from __future__ import annotations

import types

import hms_contracts

PUBLIC_MODULES = {"specs", "subjects", "topology"}


def test_all_is_pinned() -> None:
    assert hms_contracts.__all__ == [
        "CATALOGUE",
        "GENESIS_HASH",
        "SYSTEM_NAMESPACE",
        "AgencyEvent",
        "AlertFiring",
        "AlertResolved",
        "AuditRecorded",
        "BusEvent",
        "ConfigAction",
        "ConfigChanged",
        "ContractError",
        "EscalationFailed",
        "Event",
        "Health",
        "IncidentClosed",
        "IncidentEscalated",
        "IncidentOpened",
        "IncidentStatus",
        "IncidentStepRan",
        "IncidentUpdated",
        "MetricSample",
        "MetricSampleBatch",
        "Namespace",
        "NotifyRequested",
        "Operator",
        "QueueControlRequested",
        "RunAwaitingApproval",
        "RunCancelRequested",
        "RunCompleted",
        "RunDeadLettered",
        "RunFailed",
        "RunProgressed",
        "RunScheduled",
        "RunStarted",
        "ScaleDecided",
        "ScaleRequested",
        "ServiceHeartbeat",
        "SlaBreached",
        "SloStatusReported",
        "SubjectError",
        "TicketFiled",
        "WorkItemBatch",
        "decode",
        "deterministic_id",
        "event_for_subject",
        "run_id_for",
        "run_key",
        "specs",
        "subjects",
        "topology",
    ]


def test_all_imports_are_exported() -> None:
    public = {
        name
        for name, value in vars(hms_contracts).items()
        if not name.startswith("_")
        and (not isinstance(value, types.ModuleType) or name in PUBLIC_MODULES)
    }
    assert public == set(hms_contracts.__all__)


def test_every_catalogued_event_is_exported() -> None:
    for model in hms_contracts.CATALOGUE:
        assert getattr(hms_contracts, model.__name__) is model
