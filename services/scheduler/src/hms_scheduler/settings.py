"""Settings of the scheduler service (environment prefix ``HMS_SCHEDULER_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class SchedulerSettings(ServiceSettings):
    """Everything the scheduler reads from its environment."""

    model_config = settings_config(SERVICE)
