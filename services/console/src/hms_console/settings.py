"""Settings of the console service (environment prefix ``HMS_CONSOLE_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class ConsoleSettings(ServiceSettings):
    """Everything the console reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HMS_CONSOLE_", extra="ignore", frozen=True)
