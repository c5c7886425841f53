"""Settings of the scheduler service (environment prefix ``HMS_SCHEDULER_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class SchedulerSettings(ServiceSettings):
    """Everything the scheduler reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HMS_SCHEDULER_", extra="ignore", frozen=True)
