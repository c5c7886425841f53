"""Settings of the worker-pool service (environment prefix ``HMS_WORKER_POOL_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings
from pydantic_settings import SettingsConfigDict


class WorkerPoolSettings(ServiceSettings):
    """Everything the worker-pool reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HMS_WORKER_POOL_", extra="ignore", frozen=True)
