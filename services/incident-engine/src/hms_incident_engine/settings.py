"""Settings of the incident-engine service (environment prefix ``HMS_INCIDENT_ENGINE_``)."""

from __future__ import annotations

from hms_kit import settings_config

from .core import SERVICE
from .escalation import settings as escalation


class IncidentEngineSettings(escalation.EscalationSettings):
    """Everything the incident-engine reads from its environment."""

    model_config = settings_config(SERVICE)
