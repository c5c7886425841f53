"""Metric samples, carried in batches (the hot path: 100-1000 samples per message)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from . import subjects
from .bus import BusEvent
from .fields import Finite, Labels, MetricName, Token
from .subjects import Family

MAX_BATCH_SAMPLES = 10_000
"""Most samples one MetricSampleBatch may carry."""


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
        min_length=1, max_length=MAX_BATCH_SAMPLES, description="The samples, in observation order"
    )
    ttl_s: float | None = Field(
        default=None,
        gt=0,
        le=366 * 86400,
        allow_inf_nan=False,
        description=(
            "Pushed series only: seconds after its last sample at which a series of this batch "
            "expires (gone from queries and evaluation) unless pushed again; none: it never does"
        ),
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


# --- queries (request/reply on ops.query.metrics.<ns>, served by the metrics-collector) -------

QueryFn = Literal["last", "avg", "min", "max", "sum", "count", "rate", "p50", "p90", "p95", "p99"]
"""How the samples of one step are aggregated; pNN are quantiles of the raw values (linear
interpolation between closest ranks, as numpy's default and Prometheus' quantile_over_time)."""

QUERY_FNS: tuple[str, ...] = get_args(QueryFn)

Seconds = Annotated[float, Field(gt=0, le=366 * 86400, allow_inf_nan=False)]


class MetricQuery(BaseModel):
    """A range query over one namespace's stored samples (the namespace is the subject's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: str = Field(
        min_length=1,
        max_length=2048,
        description='A metric name, optionally with equality label matchers: name{k="v",...}',
        examples=['api.latency_ms{route="/claims"}'],
    )
    range_s: Seconds = Field(default=3600.0, description="How far back from end, seconds")
    step_s: Seconds = Field(default=60.0, description="Width of each aggregated step, seconds")
    fn: QueryFn = Field(default="last", description="Aggregation over each step")
    end: AwareDatetime | None = Field(default=None, description="End of the range (now if none)")


class MetricPoint(BaseModel):
    """One step's aggregate: the step ends at ``at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime = Field(description="End of the step")
    value: Finite = Field(description="The aggregate over the step")


class MetricSeries(BaseModel):
    """One series' points."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: MetricName = Field(description="Metric name")
    labels: Labels = Field(default_factory=dict, description="The series' labels")
    points: tuple[MetricPoint, ...] = Field(description="Steps that had samples, oldest first")


class MetricQueryResult(BaseModel):
    """The answer to a MetricQuery: the matching series, or an error saying what was wrong."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: tuple[MetricSeries, ...] = Field(default=(), description="Matching series")
    error: str | None = Field(default=None, description="Why the query was refused, if it was")
