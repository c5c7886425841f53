"""Settings of the autoscaler service (environment prefix ``HMS_AUTOSCALER_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class AutoscalerSettings(ServiceSettings):
    """Everything the autoscaler reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HMS_AUTOSCALER_", extra="ignore", frozen=True)
