"""Metric samples, carried in batches (the hot path: 100-1000 samples per message)."""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from . import subjects
from .bus import BusEvent
from .fields import Finite, Labels, MetricName, Token
from .subjects import Family


class MetricSample(BaseModel):
    """One measurement inside a MetricSampleBatch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: MetricName = Field(description="Dotted metric name, e.g. api.latency_p99")
    value: Finite = Field(description="Measured value (finite)")
    unit: str = Field(
        default="1",
        pattern=r"^[A-Za-z0-9_%/.]{1,32}$",
        description="Unit of the value, e.g. ms, s, bytes, ratio; 1 when dimensionless",
    )
    labels: Labels = Field(default_factory=dict, description="Label names and values")
    observed_at: AwareDatetime = Field(description="When the value was measured")


class MetricSampleBatch(BusEvent):
    """A batch of samples from one source (hot path: 100-1000 samples per message)."""

    family: ClassVar[Family] = subjects.METRIC

    source: Token = Field(description="Who measured: scrape target or pushing client (a token)")
    origin: Literal["scrape", "push"] = Field(
        description="scrape (collector read /metrics) or push (SDK or client sent the samples)"
    )
    samples: tuple[MetricSample, ...] = Field(
        min_length=1, max_length=10_000, description="The samples, in observation order"
    )

    def routing_token(self) -> str:
        """``ops.metric.<ns>.<source>``."""
        return self.source

    def natural_key(self) -> tuple[object, ...]:
        """The same samples from the same source are the same batch."""
        body = json.dumps(
            [s.model_dump(mode="json") for s in self.samples], sort_keys=True, separators=(",", ":")
        )
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        return (self.namespace, "metrics", self.source, digest)
