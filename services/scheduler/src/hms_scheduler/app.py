"""Builds the scheduler service: its settings, resources and leader loop, and nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_contracts import specs
from hms_kit import Clock, Loop, Resources, Service, SystemClock

from . import __version__
from .adapters import RunEventsView, SqliteLedger, WatchedJobs
from .core import SERVICE
from .firing import Firing, Limits, SchedulerMetrics, fire_forever
from .handlers import router
from .ports import JobSource
from .settings import SchedulerSettings

log = logging.getLogger(__name__)

LEDGER_FILE = "scheduler.sqlite3"


def _settings(service: Service) -> SchedulerSettings:
    if not isinstance(service.settings, SchedulerSettings):
        raise TypeError(f"the scheduler needs SchedulerSettings, not {service.settings!r}")
    return service.settings


def resources_with(clock: Clock | None = None, jobs: JobSource | None = None) -> Resources:
    """The scheduler's resources, with the clock or the job source replaced (tests)."""

    @asynccontextmanager
    async def opened(service: Service) -> AsyncIterator[Mapping[str, object]]:
        settings = _settings(service)
        ledger = SqliteLedger(settings.state_dir / LEDGER_FILE)
        active = RunEventsView(lambda: service.js)
        await active.start()
        try:
            yield {
                "clock": clock or SystemClock(),
                "ledger": ledger,
                "active": active,
                "jobs": jobs or WatchedJobs(service),
                "metrics": SchedulerMetrics(service.metrics.registry),
            }
        finally:
            await active.close()
            await ledger.close()

    return opened


resources = resources_with()
"""What the leader loop uses, opened once per process and closed after it: the clock, the
ledger (SQLite in the state directory), the job source, the runs under way (from the run
events) and the scheduler's metrics."""


def schedule_every(tick_s: float) -> Loop:
    async def schedule(service: Service) -> None:
        """The leader loop: runs only while this instance holds the scheduler's lease, and
        checks it before each job's runs are published."""
        settings, context = _settings(service), service.broker.context
        firing = Firing(
            service.js,
            context.get("jobs"),
            context.get("ledger"),
            context.get("active"),
            context.get("clock"),
            may_fire=lambda: service.lease is not None and service.lease.held,
            limits=Limits(catchup_limit=settings.catchup_limit, report_limit=settings.report_limit),
            metrics=context.get("metrics"),
        )
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
    ``clock`` and ``jobs`` replace the system clock and the config registry (tests)."""
    settings = settings or SchedulerSettings()
    return Service(
        SERVICE,
        settings,
        version=__version__,
        routers=(router,),
        resources=resources_with(clock, jobs),
        leader_loops=(schedule_every(settings.tick_s),),
        lease_bucket=lease_bucket,
    )
