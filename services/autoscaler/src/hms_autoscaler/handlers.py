"""Subscribers of the autoscaler: thin ``on_<event>`` functions that call ``core``."""

from __future__ import annotations

import logging
from typing import Annotated

from faststream import Context
from faststream.nats import NatsRouter
from hms_contracts import specs
from hms_contracts.config import ScalePolicy
from hms_contracts.incidents import IncidentClosed, ScaleRequested
from hms_kit import Clock, ConfigWatcher, Reject, durable_subscriber

from .core import SERVICE, Override, floor_of
from .overrides import Overrides

log = logging.getLogger(__name__)

router = NatsRouter()

Requests = Annotated[Overrides, Context("overrides")]
Config = Annotated[ConfigWatcher, Context("config")]
RequestFor = Annotated[float, Context("scale_request_for_s")]
Now = Annotated[Clock, Context("clock")]


async def on_scale_requested(
    event: ScaleRequested,
    overrides: Requests,
    config: Config,
    request_for_s: RequestFor,
    clock: Now,
) -> None:
    """A playbook's scale step: the requested count floors the pool until the request's time
    plus ``scale_request_for_s``; a pool without a ``scale_policy`` is refused (dead-lettered)."""
    ns, pool = event.namespace, event.pool
    policy = next(
        (
            p
            for p in config.objects(ScalePolicy.kind, ns)
            if isinstance(p, ScalePolicy) and p.name == pool
        ),
        None,
    )
    if policy is None:
        known = sorted(p.name for p in config.objects(ScalePolicy.kind, ns))
        reason = (
            f"scale request of incident {event.incident_id} (playbook {event.playbook}, step "
            f"{event.step_index}) for pool {pool!r}: namespace {ns} has no scale_policy of "
            f"that name (known: {', '.join(known) or 'none'}); nothing scaled"
        )
        log.warning("%s", reason)
        raise Reject(reason)
    at = event.occurred_at.timestamp()
    override = Override(
        namespace=ns,
        pool=pool,
        replicas=event.replicas,
        incident_id=event.incident_id,
        playbook=event.playbook,
        step_index=event.step_index,
        event_id=event.event_id,
        requested_at=at,
        until=at + request_for_s,
    )
    if overrides.is_closed(ns, event.incident_id):
        log.info("pool %s: the incident %s closed already", policy.pool_id, event.incident_id)
    elif override.until <= clock.now().timestamp():
        log.info("pool %s: scale request %s came after it lapsed", policy.pool_id, event.event_id)
    elif overrides.put(override):
        floor = floor_of(override, policy, at)
        log.info("pool %s: %s", policy.pool_id, floor.reason if floor else "request lapsed")
    else:
        log.info("pool %s: scale request %s already kept", policy.pool_id, event.event_id)


async def on_incident_closed(
    event: IncidentClosed, overrides: Requests, request_for_s: RequestFor
) -> None:
    """The incident is over: the pools its playbook floored scale as their policies say."""
    forget_at = event.occurred_at.timestamp() + request_for_s
    for released in overrides.close(event.namespace, event.incident_id, forget_at):
        log.info(
            "pool %s: incident %s closed (%s); its scale request no longer floors the pool",
            released.pool_id,
            event.incident_id,
            event.resolution,
        )


durable_subscriber(
    router,
    specs.AUTOSCALER_SCALE_REQUESTS,
    {ScaleRequested: on_scale_requested, IncidentClosed: on_incident_closed},
    service=SERVICE,
)
