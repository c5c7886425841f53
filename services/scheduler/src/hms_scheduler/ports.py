"""The scheduler's I/O, behind small protocols: where jobs come from, what is already running,
and the ledger of decided slots with each job's watermark."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from hms_contracts.config import Job

from .core import Decision


class JobSource(Protocol):
    """The jobs to schedule now (the config registry's ``job`` kind)."""

    async def jobs(self) -> Sequence[Job]: ...


class ActiveRuns(Protocol):
    """Run ids of a job's runs that have not finished, for its overlap policy."""

    async def active(self, job: Job) -> Collection[str]: ...


class Ledger(Protocol):
    """Each job's watermark and every slot decided, durable across restarts."""

    async def watermarks(self) -> dict[str, datetime]:
        """The watermark of every job seen, by registry key."""
        ...

    async def record(self, job: Job, decision: Decision, decided_at: datetime) -> None:
        """Store the decision's slots (once each, by run id) and move the job's watermark
        forward to the decision's (never back). Called after its runs are stored on the bus."""
        ...

    async def record_many(
        self, decisions: Sequence[tuple[Job, Decision]], decided_at: datetime
    ) -> None:
        """:meth:`record` for several jobs' decisions, in one transaction."""
        ...
