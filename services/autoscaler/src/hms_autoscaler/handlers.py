"""Subscribers of the autoscaler: thin ``on_<event>`` functions that call ``core``."""

from __future__ import annotations

import logging
from typing import Annotated

from faststream import Context
from faststream.nats import NatsRouter
from hms_contracts import specs
from hms_contracts.config import ScalePolicy
from hms_contracts.incidents import ScaleRequested
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
    if override.until <= clock.now().timestamp():
        log.info("pool %s: scale request %s came after it lapsed", policy.pool_id, event.event_id)
    elif overrides.put(override):
        floor = floor_of(override, policy, at)
        log.info("pool %s: %s", policy.pool_id, floor.reason if floor else "request lapsed")
    else:
        log.info("pool %s: scale request %s already kept", policy.pool_id, event.event_id)


durable_subscriber(
    router,
    specs.AUTOSCALER_SCALE_REQUESTS,
    {ScaleRequested: on_scale_requested},
    service=SERVICE,
)
