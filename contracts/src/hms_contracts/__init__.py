"""hms_contracts: the typed events, subjects and bus specs every hms-ops service shares.

Depends on pydantic alone. Services import events from here (``from hms_contracts import
RunScheduled``) and subjects, streams and permissions from the ``subjects``, ``specs`` and
``topology`` modules.
"""

from . import events, specs, subjects, topology
from .base import SYSTEM_NAMESPACE, Event, Namespace, deterministic_id
from .bus import BusEvent
from .events import (
    CATALOGUE,
    AlertFiring,
    AlertResolved,
    AuditRecorded,
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStepRan,
    IncidentUpdated,
    MetricSample,
    MetricSampleBatch,
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunScheduled,
    RunStarted,
    ScaleDecided,
    ServiceHeartbeat,
    SlaBreached,
    decode,
    event_for_subject,
    run_id_for,
)
from .subjects import SubjectError

__all__ = [
    "CATALOGUE",
    "SYSTEM_NAMESPACE",
    "AlertFiring",
    "AlertResolved",
    "AuditRecorded",
    "BusEvent",
    "Event",
    "IncidentClosed",
    "IncidentEscalated",
    "IncidentOpened",
    "IncidentStepRan",
    "IncidentUpdated",
    "MetricSample",
    "MetricSampleBatch",
    "Namespace",
    "RunCompleted",
    "RunDeadLettered",
    "RunFailed",
    "RunProgressed",
    "RunScheduled",
    "RunStarted",
    "ScaleDecided",
    "ServiceHeartbeat",
    "SlaBreached",
    "SubjectError",
    "decode",
    "deterministic_id",
    "event_for_subject",
    "events",
    "run_id_for",
    "specs",
    "subjects",
    "topology",
]
