"""Config objects: what users declare (metrics, alert rules, playbooks, ...) and services follow.

Every kind is a frozen pydantic model with ``kind``, ``namespace`` and ``name``; it is stored in
the one config registry (a JetStream KV bucket) under :meth:`ConfigObject.key`,
``<namespace>.<kind>.<name>``, so a namespace's NATS permissions cover exactly its own objects.
The CLI (``hms-ops apply``), the SDK (``noc.register``) and the owning services validate with
these same models.
"""

from .base import (
    KINDS,
    ConfigEntry,
    ConfigObject,
    config_key,
    parse_duration,
    parse_object,
    split_key,
)
from .escalation import EscalationPolicy, Level, OncallSchedule, Override, Rotation
from .incidents import Param, Silence
from .jobs import Job
from .objects import Alert, Condition, Metric, Playbook
from .rules import Matcher
from .scaling import MetricTrigger, ScalePolicy, ScaleRules, parse_series
from .scrape import ScrapeTarget
from .slos import BurnWindow, Slo
from .steps import (
    ApproveStep,
    NotifyStep,
    PauseQueueStep,
    PythonStep,
    ResumeQueueStep,
    RunStep,
    ScaleStep,
    Step,
    TicketStep,
    WebhookStep,
    parse_step,
)

__all__ = [
    "KINDS",
    "Alert",
    "ApproveStep",
    "BurnWindow",
    "Condition",
    "ConfigEntry",
    "ConfigObject",
    "EscalationPolicy",
    "Job",
    "Level",
    "Matcher",
    "Metric",
    "MetricTrigger",
    "NotifyStep",
    "OncallSchedule",
    "Override",
    "Param",
    "PauseQueueStep",
    "Playbook",
    "PythonStep",
    "ResumeQueueStep",
    "Rotation",
    "RunStep",
    "ScalePolicy",
    "ScaleRules",
    "ScaleStep",
    "ScrapeTarget",
    "Silence",
    "Slo",
    "Step",
    "TicketStep",
    "WebhookStep",
    "config_key",
    "parse_duration",
    "parse_object",
    "parse_series",
    "parse_step",
    "split_key",
]
