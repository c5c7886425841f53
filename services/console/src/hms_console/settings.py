"""Settings of the console service (environment prefix ``HMS_CONSOLE_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class ConsoleSettings(ServiceSettings):
    """Everything the console reads from its environment."""

    model_config = settings_config(SERVICE)
