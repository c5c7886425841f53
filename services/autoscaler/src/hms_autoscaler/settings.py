"""Settings of the autoscaler service (environment prefix ``HMS_AUTOSCALER_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class AutoscalerSettings(ServiceSettings):
    """Everything the autoscaler reads from its environment."""

    model_config = settings_config(SERVICE)
