"""Escalation: on-call schedules and escalation policies that reach a person by e-mail, with
signed single-use acknowledge links, persistent due times and visible failures."""

from .adapters import StaticDirectory, WatchedDirectory
from .email import EmailSender
from .engine import EscalationEngine
from .handlers import router
from .settings import EscalationSettings
from .store import EscalationStore
from .wiring import escalate_forever, escalation_resources

__all__ = [
    "EmailSender",
    "EscalationEngine",
    "EscalationSettings",
    "EscalationStore",
    "StaticDirectory",
    "WatchedDirectory",
    "escalate_forever",
    "escalation_resources",
    "router",
]
