"""Scaling decisions: how many workers a pool should run, from which inputs, and why."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import subjects
from .bus import BusEvent
from .fields import Finite, Text, Token
from .subjects import Family

ScaleAction = Literal["scale_up", "scale_down", "hold"]


class TriggerReading(BaseModel):
    """What one input of a decision read, and how many workers it asked for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger: str = Field(
        max_length=512, description="'backlog' or the metric trigger's series selector"
    )
    value: Finite | None = Field(description="The value read (None: it could not be read)")
    desired: int | None = Field(ge=0, description="Workers this input asks for (None: unread)")
    active: bool = Field(description="Above its activation threshold (may wake a pool at 0)")
    error: str | None = Field(default=None, max_length=1024, description="Why it is unreadable")


class ScaleDecided(BusEvent):
    """The autoscaler chose how many workers a pool should run."""

    family: ClassVar[Family] = subjects.SCALE

    pool: Token = Field(description="Worker pool being scaled, e.g. worker_pool")
    consumer: str = Field(
        max_length=256, description="Stream/durable whose backlog drove the decision"
    )
    backend: str = Field(max_length=32, description="Where the workers run: local, docker, k8s")
    action: ScaleAction = Field(description="scale_up, scale_down or hold")
    current: int = Field(ge=0, description="Workers running when deciding")
    desired: int = Field(ge=0, description="Workers the pool should run")
    recommended: int = Field(
        ge=0, description="What the inputs asked for, before stabilization and step limits"
    )
    backlog: int | None = Field(
        ge=0, description="num_pending + num_ack_pending of the consumer (None: unreadable)"
    )
    num_pending: int | None = Field(ge=0, description="Messages not yet delivered")
    num_ack_pending: int | None = Field(ge=0, description="Messages delivered, not yet acked")
    triggers: tuple[TriggerReading, ...] = Field(
        default=(), description="Every input read: the backlog first, then the metric triggers"
    )
    degraded: bool = Field(
        default=False, description="An input could not be read: the count was held"
    )
    reason: Text = Field(description="Why, e.g. 'backlog 1000 / 10 per worker = 100, max 5'")
    floor: int | None = Field(
        default=None,
        ge=0,
        description="A playbook's scale request in force: the fewest workers the pool may run "
        "(the request clamped to min and max); None when no request floors the pool",
    )
    incident_id: str | None = Field(
        default=None, max_length=128, description="Incident whose playbook requested the floor"
    )
    playbook: str | None = Field(
        default=None, max_length=128, description="Playbook whose scale step requested the floor"
    )

    def routing_token(self) -> str:
        """``ops.scale.<ns>.<pool>``."""
        return self.pool

    def natural_key(self) -> tuple[object, ...]:
        """One decision per pool per instant."""
        return (self.namespace, "scale", self.pool, self.occurred_at)
