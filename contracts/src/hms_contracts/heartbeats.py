"""Service heartbeats: each instance announces itself and its health (the registry)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from . import subjects
from .base import SYSTEM_NAMESPACE
from .bus import BusEvent
from .subjects import Family

Health = Literal["ok", "degraded", "failing"]


class ServiceHeartbeat(BusEvent):
    """A service instance announces itself and its health (the service registry)."""

    family: ClassVar[Family] = subjects.HEARTBEAT

    service: str = Field(description="Service name, e.g. scheduler")
    version: str = Field(description="Version of the running service package")
    instance_id: str = Field(description="Unique id of this process, stable for its lifetime")
    started_at: AwareDatetime = Field(description="When this instance started")
    health: Health = Field(description="ok, degraded (working with reduced ability) or failing")
    http_url: str = Field(description="Base URL of the instance's /healthz and /metrics")
    pid: int = Field(description="Operating-system process id")
    host: str = Field(description="Host name the instance runs on")
    leader: bool | None = Field(
        default=None, description="For singletons, whether this instance holds the lease"
    )
    interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between this instance's heartbeats; stale after three of them",
    )

    def subject(self) -> str:
        """``ops.heartbeat.system.<service>``: heartbeats live in the system namespace."""
        return subjects.heartbeat(self.service)

    @classmethod
    def subject_pattern(cls, namespace: str | None = None) -> str:
        """Every service's heartbeat (the namespace is always ``system``)."""
        return cls.family.wildcard(SYSTEM_NAMESPACE).removesuffix(">") + "*"

    def natural_key(self) -> tuple[object, ...]:
        """One heartbeat per instance per instant (the kit's scheme)."""
        return ("hb", self.service, self.instance_id, self.occurred_at)
