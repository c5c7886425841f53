"""Scaling decisions: how many workers a pool should run."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from . import subjects
from .bus import BusEvent
from .fields import Text, Token
from .subjects import Family


class ScaleDecided(BusEvent):
    """The autoscaler chose how many workers a pool should run."""

    family: ClassVar[Family] = subjects.SCALE

    pool: Token = Field(description="Worker pool being scaled, e.g. worker_pool")
    queue: Token = Field(description="Queue whose depth drove the decision")
    current: int = Field(ge=0, description="Workers running when deciding")
    desired: int = Field(ge=0, description="Workers the pool should run")
    queue_depth: int = Field(ge=0, description="Work items waiting in the queue")
    reason: Text = Field(description="Why, e.g. 'depth 4200 > 500 per worker'")

    def routing_token(self) -> str:
        """``ops.scale.<ns>.<pool>``."""
        return self.pool

    def natural_key(self) -> tuple[object, ...]:
        """One decision per pool per instant."""
        return (self.namespace, "scale", self.pool, self.occurred_at)
