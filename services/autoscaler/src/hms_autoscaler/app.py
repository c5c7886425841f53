"""Builds the autoscaler service: its settings, resources and leader loop, and nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from hms_contracts import specs
from hms_contracts.config import ScalePolicy
from hms_kit import Clock, Loop, Resources, Service, SystemClock

from . import __version__
from .backends import configured_backends
from .core import SERVICE
from .handlers import router
from .local import LocalWorkers
from .overrides import Overrides
from .ports import Backend
from .scaling import Autoscaler, AutoscalerMetrics
from .settings import AutoscalerSettings

log = logging.getLogger(__name__)

BackendFactory = Callable[[Service], Mapping[str, Backend]]


def _settings(service: Service) -> AutoscalerSettings:
    if not isinstance(service.settings, AutoscalerSettings):
        raise TypeError(f"the autoscaler needs AutoscalerSettings, not {service.settings!r}")
    return service.settings


def resources_with(clock: Clock | None = None) -> Resources:
    @asynccontextmanager
    async def opened(service: Service) -> AsyncIterator[Mapping[str, object]]:
        settings = _settings(service)
        yield {
            "clock": clock or SystemClock(),
            "metrics": AutoscalerMetrics(service.metrics.registry),
            "overrides": Overrides(settings.state_dir),
            "scale_request_for_s": settings.scale_request_for_s,
        }

    return opened


resources = resources_with()
"""What the leader loop and the subscriber use, opened once per process: the clock, the
autoscaler's metrics and the playbooks' scale requests in force."""


def autoscale_with(backends: BackendFactory | None = None) -> Loop:
    async def autoscale(service: Service) -> None:
        """The leader loop: runs only while this instance holds the autoscaler's lease; on
        taking it, the backends adopt the workers the previous leader started."""
        settings, context = _settings(service), service.broker.context

        def policies() -> list[ScalePolicy]:
            objs = service.config.objects(ScalePolicy.kind)
            return [o for o in objs if isinstance(o, ScalePolicy)]

        made = (backends or (lambda s: configured_backends(settings, s.settings.nats_url)))(service)
        scaler = Autoscaler(
            service.nc,
            policies,
            made,
            context.get("clock"),
            instance_id=service.instance_id,
            metrics=context.get("metrics"),
            overrides=context.get("overrides"),
            on_degraded=lambda reason: service.report_degraded("pools", reason),
        )
        try:
            await scaler.run()
        finally:
            local = made.get("local")
            if service.draining and settings.local_stop_on_exit and isinstance(local, LocalWorkers):
                log.info("stopping: draining %d local worker(s)", local.stop_all())

    return autoscale


def create_service(
    settings: AutoscalerSettings | None = None,
    *,
    clock: Clock | None = None,
    backends: BackendFactory | None = None,
    lease_bucket: specs.KVSpec = specs.LEASES,
) -> Service:
    """The autoscaler process: broker, app, resources, health, heartbeat, lease, leader loop.
    ``clock`` and ``backends`` replace the system clock and the configured backends (tests)."""
    return Service(
        SERVICE,
        settings or AutoscalerSettings(),
        version=__version__,
        routers=(router,),
        resources=resources_with(clock),
        leader_loops=(autoscale_with(backends),),
        lease_bucket=lease_bucket,
    )
