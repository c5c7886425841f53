"""The ``scale_policy`` kind: how many workers a pool runs, as KEDA and the HPA decide it.

A pool is a queue (a durable consumer on the work stream) and the workers that pull from it.
The policy reads like a KEDA ``ScaledObject`` with the HPA's ``behavior``::

    kind: scale_policy
    namespace: system
    name: worker_pool                # the pool: ops.scale.<ns>.<pool>
    consumer: worker_pool            # its durable consumer on JOB_RUNS
    min: 0                           # minReplicaCount
    max: 5                           # maxReplicaCount
    target_backlog_per_worker: 10    # the queue scaler's target value (AverageValue)
    activation_backlog: 0            # activation threshold: from 0 only above this
    idle_to_zero_after: 5m           # cooldownPeriod
    tolerance: 0.1                   # the HPA's tolerance
    scale_up:   {stabilization: 0s, workers: 4, percent: 100, period: 15s}
    scale_down: {stabilization: 5m, percent: 100, period: 15s}
    triggers:                        # more gateway workers when the 5xx rate spikes
      - series: 'gateway.http_5xx_rate{route="/claims"}'
        threshold: 5                 # per worker
        aggregation: avg
        window: 1m
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from hms_contracts.fields import Finite
from hms_contracts.tokens import check_token, check_tokens

from .base import ConfigObject, Duration, kind, parse_duration

BACKENDS = ("local", "docker", "kubernetes")
"""Where a pool's workers run: local processes, containers (Docker Engine API), a Deployment."""

AGGREGATIONS = ("avg", "max", "min", "sum", "last", "count")
"""How a trigger folds its series' samples in the window into one value."""

_SELECTOR = re.compile(r"^(?P<name>[^{}\s]+)(?:\{(?P<labels>[^{}]*)\})?$")
_MATCHER = re.compile(r'^\s*(?P<label>[A-Za-z_][A-Za-z0-9_]{0,127})\s*=\s*"(?P<value>[^"\\]*)"\s*$')
_DURATION0 = re.compile(r"^0+(?:\.0+)?s?$")


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name{label="value",...}`` (a Prometheus-style selector with equality
    matchers) as the metric name and its label matchers; ValueError naming what is wrong."""
    match = _SELECTOR.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"series {text!r} must be a metric name, optionally with label matchers: "
            'gateway.http_5xx_rate or gateway.http_5xx_rate{route="/claims"}'
        )
    name = match["name"]
    if len(name) > 200:
        raise ValueError(f"series {text!r}: the metric name is longer than 200 characters")
    try:
        check_tokens(name, "metric name")
    except ValueError as exc:
        raise ValueError(f"series {text!r}: {exc}") from None
    labels: dict[str, str] = {}
    body = (match["labels"] or "").strip()
    for part in filter(None, (p.strip() for p in body.split(","))) if body else ():
        m = _MATCHER.fullmatch(part)
        if m is None:
            raise ValueError(
                f'series {text!r}: label matcher {part!r} must be label="value" '
                "(only equality matchers)"
            )
        if m["label"] in labels:
            raise ValueError(f"series {text!r}: label {m['label']!r} matched twice")
        labels[m["label"]] = m["value"]
    return name, labels


def _check_series(text: str) -> str:
    parse_series(text)
    return text


def seconds(text: str) -> float:
    """A duration such as ``0s``, ``15s`` or ``5m`` in seconds; zero is allowed here."""
    if isinstance(text, str) and _DURATION0.fullmatch(text.strip()):
        return 0.0
    return parse_duration(text).total_seconds()


def _check_window(text: str) -> str:
    seconds(text)
    return text


Window = Annotated[
    str,
    AfterValidator(_check_window),
    Field(examples=["0s", "5m"], description="A duration such as 0s, 30s, 5m or 1h (0 allowed)"),
]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScaleRules(_Part):
    """One direction of the HPA's ``behavior``: a stabilization window and step limits.

    In the window the most conservative recommendation wins (the highest when scaling
    down, the lowest when scaling up). A step is at most ``workers`` workers or ``percent``
    of the count at the start of the ``period``, the larger of the two (``select: max``, the
    HPA's default) or the smaller (``select: min``); no limit given means none.
    """

    stabilization: Window = Field(description="Stabilization window, e.g. 0s or 5m")
    workers: int | None = Field(
        default=None, ge=1, le=10_000, description="At most this many workers per period"
    )
    percent: float | None = Field(
        default=None, gt=0, le=10_000, description="At most this percent of the count per period"
    )
    period: Duration = Field(default="15s", description="Period the step limits apply to")
    select: Literal["max", "min"] = Field(
        default="max", description="When both limits are set: the larger (max) or smaller (min)"
    )

    @property
    def stabilization_s(self) -> float:
        return seconds(self.stabilization)

    @property
    def period_s(self) -> float:
        return seconds(self.period)


class MetricTrigger(_Part):
    """A metric series on ``ops.metric.<ns>.*`` that asks for workers: ``ceil(value /
    threshold)`` of them (KEDA's AverageValue), active above ``activation_threshold``."""

    series: Annotated[str, AfterValidator(_check_series)] = Field(
        description='Metric name, optionally with label matchers: name{label="value"}',
        examples=['gateway.http_5xx_rate{route="/claims"}'],
    )
    threshold: Finite = Field(gt=0, description="Target value per worker, in the metric's unit")
    activation_threshold: Finite = Field(
        default=0.0, ge=0, description="The trigger is active (may wake a pool at 0) above this"
    )
    aggregation: Literal["avg", "max", "min", "sum", "last", "count"] = Field(
        default="avg", description="How samples in the window become one value"
    )
    window: Duration = Field(default="1m", description="Samples older than this are left out")
    stale_after: Duration | None = Field(
        default=None,
        description="No sample for this long makes the input unreadable (default: the window)",
    )

    @field_validator("aggregation", mode="before")
    @classmethod
    def _known_aggregation(cls, value: Any) -> Any:
        if value not in AGGREGATIONS:
            raise ValueError(f"aggregation {value!r} is not one of {', '.join(AGGREGATIONS)}")
        return value

    @property
    def metric(self) -> str:
        return parse_series(self.series)[0]

    @property
    def labels(self) -> dict[str, str]:
        return parse_series(self.series)[1]

    @property
    def window_s(self) -> float:
        return seconds(self.window)

    @property
    def stale_after_s(self) -> float:
        return seconds(self.stale_after) if self.stale_after is not None else self.window_s


class KubernetesTarget(_Part):
    """The Deployment whose ``scale`` subresource the kubernetes backend patches."""

    deployment: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=253, description="Deployment name"
    )
    namespace: str = Field(
        default="default",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Kubernetes namespace of the Deployment",
    )


class DockerTarget(_Part):
    """The worker containers the docker backend creates and removes (labelled by pool)."""

    image: str = Field(
        min_length=1, max_length=512, pattern=r"^[^\s]+$", description="Worker image to run"
    )
    network: str | None = Field(default=None, max_length=128, description="Network to join")


@kind
class ScalePolicy(ConfigObject):
    """How many workers a pool runs: queue backlog and metric triggers, within min and max,
    without flapping (tolerance, stabilization, step limits), down to zero when idle."""

    kind: ClassVar[str] = "scale_policy"

    stream: str = Field(
        default="JOB_RUNS", pattern=r"^[A-Z][A-Z0-9_]*$", description="Stream of the pool's queue"
    )
    consumer: str = Field(
        default="worker_pool",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Durable consumer the pool's workers pull from (its backlog is read)",
    )
    min: int = Field(default=0, ge=0, le=10_000, description="Fewest workers (0: scale to zero)")
    max: int = Field(ge=1, le=10_000, description="Most workers")
    target_backlog_per_worker: int = Field(
        default=10, ge=1, description="Backlog one worker should have: desired = backlog/target"
    )
    activation_backlog: int = Field(
        default=0, ge=0, description="A pool at 0 workers wakes only for a backlog above this"
    )
    idle_to_zero_after: Duration = Field(
        default="5m", description="With min 0: no activity for this long scales to zero"
    )
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="Ratio to target within which nothing changes"
    )
    scale_up: ScaleRules = Field(
        default=ScaleRules(stabilization="0s", workers=4, percent=100),
        description="Scale-up behaviour (default: no stabilization, 4 workers or 100 % per 15s)",
    )
    scale_down: ScaleRules = Field(
        default=ScaleRules(stabilization="5m", percent=100),
        description="Scale-down behaviour (default: 5m stabilization, 100 % per 15s)",
    )
    poll_interval: Duration = Field(default="1s", description="How often the pool is decided")
    backend: str = Field(default="local", description="local, docker or kubernetes")
    kubernetes: KubernetesTarget | None = Field(
        default=None, description="The Deployment to scale (backend kubernetes)"
    )
    docker: DockerTarget | None = Field(
        default=None, description="The worker containers (backend docker)"
    )
    worker_concurrency: int | None = Field(
        default=None, ge=1, le=256, description="Runs each local worker works at once"
    )
    triggers: tuple[MetricTrigger, ...] = Field(
        default=(), max_length=16, description="Metric triggers; the largest demand wins"
    )

    @field_validator("name")
    @classmethod
    def _pool_is_a_token(cls, value: str) -> str:
        try:
            return check_token(value, "pool name")
        except ValueError as exc:
            raise ValueError(f"{exc}; it is the last token of ops.scale.<ns>.<pool>") from None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"backend {value!r} is unknown; expected one of {', '.join(BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is more than max {self.max}")
        if self.backend == "kubernetes" and self.kubernetes is None:
            raise ValueError(
                "backend kubernetes needs kubernetes: {deployment: ..., namespace: ...}"
            )
        if self.backend == "docker" and self.docker is None:
            raise ValueError("backend docker needs docker: {image: ...}")
        return self

    @property
    def idle_to_zero_s(self) -> float:
        return parse_duration(self.idle_to_zero_after).total_seconds()

    @property
    def poll_interval_s(self) -> float:
        return parse_duration(self.poll_interval).total_seconds()

    @property
    def pool_id(self) -> str:
        """``<namespace>.<pool>``: the pool, across namespaces."""
        return f"{self.namespace}.{self.name}"
