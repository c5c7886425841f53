"""The autoscaler's I/O, behind small protocols: where a pool's workers run."""

from __future__ import annotations

from typing import Protocol

from hms_contracts.config import ScalePolicy


class BackendError(Exception):
    """A backend could not read or change a pool's workers; the message says which and why."""


class Backend(Protocol):
    """Runs a pool's workers: local processes, containers, or a Kubernetes Deployment."""

    name: str

    async def adopt(self) -> None:
        """Take over the workers a previous leader started (called on becoming leader)."""
        ...

    async def workers(self, policy: ScalePolicy) -> int:
        """How many workers the pool runs now (starting ones count, draining ones do not)."""
        ...

    async def scale(self, policy: ScalePolicy, desired: int) -> None:
        """Start or stop workers until the pool runs ``desired`` (stopping drains them)."""
        ...

    async def close(self) -> None:
        """Release clients; workers keep running (a new leader adopts them)."""
        ...
