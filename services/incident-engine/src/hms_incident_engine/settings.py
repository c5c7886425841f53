"""Settings of the incident-engine service (environment prefix ``HMS_INCIDENT_ENGINE_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class IncidentEngineSettings(ServiceSettings):
    """Everything the incident-engine reads from its environment."""

    model_config = settings_config(SERVICE)
