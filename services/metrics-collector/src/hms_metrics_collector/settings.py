"""Settings of the metrics-collector service (environment prefix ``HMS_METRICS_COLLECTOR_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class MetricsCollectorSettings(ServiceSettings):
    """Everything the metrics-collector reads from its environment."""

    model_config = settings_config(SERVICE)
