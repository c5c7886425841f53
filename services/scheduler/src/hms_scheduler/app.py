"""Builds the scheduler service: its settings, resources and leader loop, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_contracts import specs
from hms_kit import Clock, Loop, Resources, Service, SystemClock

from . import __version__
from .adapters import NoActiveRuns, RegistryJobs, SqliteLedger
from .core import SERVICE
from .firing import Firing, Limits, SchedulerMetrics, fire_forever
from .handlers import router
from .ports import JobSource
from .settings import SchedulerSettings

LEDGER_FILE = "scheduler.sqlite3"


def resources_with(settings: SchedulerSettings, clock: Clock, jobs: JobSource | None) -> Resources:
    @asynccontextmanager
    async def resources(service: Service) -> AsyncIterator[Mapping[str, object]]:
        """The clock, the ledger and the firing the leader loop drives, opened once."""
        ledger = await SqliteLedger.open(settings.state_dir / LEDGER_FILE)
        firing = Firing(
            service.js,
            jobs or RegistryJobs(service.js, settings.registry_bucket),
            ledger,
            NoActiveRuns(),
            clock,
            may_fire=lambda: service.lease is not None and service.lease.held,
            limits=Limits(catchup_limit=settings.catchup_limit, report_limit=settings.report_limit),
            metrics=SchedulerMetrics(service.metrics.registry),
        )
        try:
            yield {"clock": clock, "ledger": ledger, "firing": firing}
        finally:
            await ledger.close()

    return resources


def schedule_every(tick_s: float) -> Loop:
    async def schedule(service: Service) -> None:
        """The leader loop: runs only while this instance holds the scheduler's lease."""
        firing: Firing = service.broker.context.get("firing")
        await fire_forever(firing, tick_s)

    return schedule


def create_service(
    settings: SchedulerSettings | None = None,
    *,
    clock: Clock | None = None,
    jobs: JobSource | None = None,
    lease_bucket: specs.KVSpec = specs.LEASES,
) -> Service:
    """The scheduler process: broker, app, resources, health, heartbeat, lease, leader loop.
    ``clock`` and ``jobs`` replace the system clock and the registry (tests)."""
    settings = settings or SchedulerSettings()
    return Service(
        SERVICE,
        settings,
        version=__version__,
        routers=(router,),
        resources=resources_with(settings, clock or SystemClock(), jobs),
        leader_loops=(schedule_every(settings.tick_s),),
        lease_bucket=lease_bucket,
    )
