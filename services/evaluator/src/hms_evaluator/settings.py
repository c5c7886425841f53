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
    fetch_timeout_s: float = Field(
        default=0.025,
        gt=0,
        le=5,
        description="Longest a fetch waits to fill its batch once the stream is idle: bounds "
        "the delay a quiet stream adds to a breach's detection",
    )
    fresh_s: float = Field(
        default=5.0,
        ge=0,
        description="A series a sample evaluated this recently is not evaluated again by a "
        "tick (alerts pending or firing always are): bounds a tick's work under load",
    )
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
