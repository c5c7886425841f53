"""Settings of the evaluator service (environment prefix ``HMS_EVALUATOR_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class EvaluatorSettings(ServiceSettings):
    """Everything the evaluator reads from its environment."""

    model_config = settings_config(SERVICE)
