"""A playbook's scale request as a floor for its pool, like a manual override of KEDA or the
HPA: for a bounded time the pool runs at least the requested count, clamped to the policy's
``min`` and ``max`` (which win, and the reason says so); normal scaling still adds workers above
it, and once the request lapses the pool scales as before. No I/O; ``now`` (wall-clock seconds
since the epoch, since a request outlives a restart) is always an argument."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from hms_contracts.config import ScalePolicy


@dataclass(frozen=True)
class Override:
    """One playbook's request for a pool, in force from ``requested_at`` until ``until``."""

    namespace: str
    pool: str
    replicas: int
    incident_id: str
    playbook: str
    step_index: int
    event_id: str
    requested_at: float
    until: float

    @property
    def pool_id(self) -> str:
        return f"{self.namespace}.{self.pool}"

    def active(self, now: float) -> bool:
        return now < self.until

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Override:
        return cls(**data)


@dataclass(frozen=True)
class Floor:
    """The fewest workers a request allows now, and why."""

    workers: int
    reason: str
    incident_id: str
    playbook: str


def _at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_of(override: Override | None, policy: ScalePolicy, now: float) -> Floor | None:
    """The floor ``override`` puts under ``policy``'s pool at ``now``; None once it lapsed."""
    if override is None or now >= override.until:
        return None
    workers = min(max(override.replicas, policy.min), policy.max)
    why = (
        f"playbook {override.playbook} (step {override.step_index}) of incident "
        f"{override.incident_id} requested {override.replicas} until {_at(override.until)}"
    )
    if workers != override.replicas:
        why += f", clamped to {workers}: the policy's min {policy.min} and max {policy.max} win"
    return Floor(workers, why, override.incident_id, override.playbook)
