"""Settings of the evaluator service (environment prefix ``HMS_EVALUATOR_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config
from pydantic import Field

from .core import SERVICE


class EvaluatorSettings(ServiceSettings):
    """Everything the evaluator reads from its environment."""

    model_config = settings_config(SERVICE)

    tick_s: float = Field(
        default=1.0, gt=0, le=60, description="How often for timers, no-data, SLOs and deadlines"
    )
    batch: int = Field(default=256, ge=1, le=10_000, description="Metric batches pulled per fetch")
    slo_status_every_s: float = Field(
        default=60.0, gt=0, description="Each SLO's status is published this often"
    )
    replay: bool = Field(
        default=True,
        description="On start, rebuild the rules' windows from the METRICS stream",
    )
    queue_scan_limit: int = Field(
        default=1000, ge=0, description="Work items read per queue to tell queue_wait"
    )
