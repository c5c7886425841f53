"""Settings of the incident-engine service (environment prefix ``HMS_INCIDENT_ENGINE_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class IncidentEngineSettings(ServiceSettings):
    """Everything the incident-engine reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="HMS_INCIDENT_ENGINE_", extra="ignore", frozen=True
    )
