"""Settings of the metrics-collector service (environment prefix ``HMS_METRICS_COLLECTOR_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class MetricsCollectorSettings(ServiceSettings):
    """Everything the metrics-collector reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="HMS_METRICS_COLLECTOR_", extra="ignore", frozen=True
    )
