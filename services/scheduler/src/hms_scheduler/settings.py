"""Settings of the scheduler service (environment prefix ``HMS_SCHEDULER_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config
from pydantic import Field

from .core import SERVICE


class SchedulerSettings(ServiceSettings):
    """Everything the scheduler reads from its environment."""

    model_config = settings_config(SERVICE)

    tick_s: float = Field(default=1.0, gt=0, le=60, description="How often jobs are decided")
    catchup_limit: int = Field(
        default=10, ge=0, le=10_000, description="Most runs one job catches up after downtime"
    )
    report_limit: int = Field(
        default=100, ge=0, le=10_000, description="Skipped run ids listed per report"
    )
