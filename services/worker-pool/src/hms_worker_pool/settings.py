"""Settings of the worker-pool service (environment prefix ``HMS_WORKER_POOL_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config

from .core import SERVICE


class WorkerPoolSettings(ServiceSettings):
    """Everything the worker-pool reads from its environment."""

    model_config = settings_config(SERVICE)
