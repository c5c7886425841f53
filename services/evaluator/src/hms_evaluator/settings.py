"""Settings of the evaluator service (environment prefix ``HMS_EVALUATOR_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class EvaluatorSettings(ServiceSettings):
    """Everything the evaluator reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HMS_EVALUATOR_", extra="ignore", frozen=True)
