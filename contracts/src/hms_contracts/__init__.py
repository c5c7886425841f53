"""hms_contracts: the typed events, subjects and bus specs every hms-ops service shares.

Depends on pydantic alone. Services import events from here (``from hms_contracts import
RunScheduled``) and subjects, streams and permissions from the ``subjects``, ``specs`` and
``topology`` modules.
"""

from . import specs, subjects, topology
from .agency import AgencyEvent
from .alerts import AlertFiring, AlertResolved, Operator, SlaBreached, SloStatusReported
from .audit import GENESIS_HASH, AuditRecorded
from .base import SYSTEM_NAMESPACE, Event, Namespace, deterministic_id
from .bus import BusEvent
from .catalogue import CATALOGUE, decode, event_for_subject
from .configevents import ConfigAction, ConfigChanged
from .errors import ContractError, SubjectError
from .escalation import EscalationFailed
from .heartbeats import Health, ServiceHeartbeat
from .incidents import (
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStatus,
    IncidentStepRan,
    IncidentUpdated,
    NotifyRequested,
    QueueControlRequested,
    ScaleRequested,
    TicketFiled,
)
from .metrics import MetricSample, MetricSampleBatch
from .runs import (
    RunAwaitingApproval,
    RunCancelRequested,
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunProgressed,
    RunScheduled,
    RunStarted,
    WorkItemBatch,
    run_id_for,
    run_key,
)
from .scaling import ScaleDecided

__all__ = [
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
