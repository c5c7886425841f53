"""Idempotent provisioning of streams, consumers and KV buckets from the contract specs.

Provisioning creates what is missing and leaves what matches alone. An existing object whose
configuration differs from its spec is never changed silently: :class:`DriftError` names every
field that differs, so an operator decides (``migrate=True`` updates the stream or consumer).
The shared streams and buckets are the stack admin's (:func:`provision_shared`); services only
provision what they own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, Literal

from hms_contracts.specs import (
    KV_BUCKETS,
    SHARED_STREAMS,
    ConsumerSpec,
    KVSpec,
    StreamSpec,
    kv_stream,
    with_replicas,
)
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, NotFoundError

from .errors import DriftError

log = logging.getLogger(__name__)

Outcome = Literal["created", "unchanged", "updated"]

_RETENTION = {
    "limits": js_api.RetentionPolicy.LIMITS,
    "workqueue": js_api.RetentionPolicy.WORK_QUEUE,
    "interest": js_api.RetentionPolicy.INTEREST,
}
_STORAGE = {"file": js_api.StorageType.FILE, "memory": js_api.StorageType.MEMORY}
_DISCARD = {"old": js_api.DiscardPolicy.OLD, "new": js_api.DiscardPolicy.NEW}
_DELIVER = {"all": js_api.DeliverPolicy.ALL, "new": js_api.DeliverPolicy.NEW}


def stream_config(spec: StreamSpec) -> js_api.StreamConfig:
    """The nats-py stream configuration for a spec."""
    return js_api.StreamConfig(
        name=spec.name,
        description=spec.description or None,
        subjects=list(spec.subjects),
        retention=_RETENTION[spec.retention],
        storage=_STORAGE[spec.storage],
        max_age=spec.max_age_s,
        max_msgs=spec.max_msgs,
        max_bytes=spec.max_bytes,
        max_msg_size=spec.max_msg_size,
        duplicate_window=spec.duplicate_window_s,
        discard=_DISCARD[spec.discard],
        num_replicas=spec.replicas,
        deny_delete=spec.deny_delete,
        deny_purge=spec.deny_purge,
    )


def consumer_config(spec: ConsumerSpec) -> js_api.ConsumerConfig:
    """The nats-py consumer configuration for a spec (durable, pull, explicit ack)."""
    filters = list(spec.filter_subjects)
    return js_api.ConsumerConfig(
        durable_name=spec.durable,
        name=spec.durable,
        description=spec.description or None,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=_DELIVER[spec.deliver_policy],
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        backoff=list(spec.backoff_s) or None,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a or 0), float(b or 0), rel_tol=1e-6, abs_tol=1e-3)
    return bool(a == b)


def _diff(kind: str, name: str, pairs: Iterable[tuple[str, Any, Any]]) -> list[str]:
    return [
        f"{kind} {name}: {field} is {have!r} on the server, the spec says {want!r}"
        for field, want, have in pairs
        if not _same(want, have)
    ]


def stream_drift(spec: StreamSpec, have: js_api.StreamConfig) -> list[str]:
    """Every field where the server's stream differs from the spec."""
    want = stream_config(spec)
    return _diff(
        "stream",
        spec.name,
        [
            ("subjects", sorted(want.subjects or []), sorted(have.subjects or [])),
            ("retention", want.retention, have.retention),
            ("storage", want.storage, have.storage),
            ("max_age", want.max_age, have.max_age),
            ("max_msgs", want.max_msgs, have.max_msgs),
            ("max_bytes", want.max_bytes, have.max_bytes),
            ("max_msg_size", want.max_msg_size, have.max_msg_size),
            ("duplicate_window", want.duplicate_window, have.duplicate_window),
            ("discard", want.discard, have.discard),
            ("num_replicas", want.num_replicas, have.num_replicas),
            ("deny_delete", bool(want.deny_delete), bool(have.deny_delete)),
            ("deny_purge", bool(want.deny_purge), bool(have.deny_purge)),
            # nothing in the catalogue copies a stream elsewhere: any of these is tampering
            ("republish", None, have.republish),
            ("sources", [], have.sources or []),
            ("mirror", None, have.mirror),
        ],
    )


def consumer_drift(spec: ConsumerSpec, have: js_api.ConsumerConfig) -> list[str]:
    """Every field where the server's consumer differs from the spec."""
    want = consumer_config(spec)
    want_filters = sorted(spec.filter_subjects)
    have_filters = sorted(
        have.filter_subjects or ([have.filter_subject] if have.filter_subject else [])
    )
    return _diff(
        "consumer",
        f"{spec.stream}/{spec.durable}",
        [
            ("filter_subjects", want_filters, have_filters),
            ("ack_policy", want.ack_policy, have.ack_policy),
            ("deliver_policy", want.deliver_policy, have.deliver_policy),
            ("ack_wait", want.ack_wait, have.ack_wait),
            ("max_deliver", want.max_deliver, have.max_deliver),
            ("backoff", list(spec.backoff_s), [float(b) for b in (have.backoff or [])]),
            ("max_ack_pending", want.max_ack_pending, have.max_ack_pending),
        ],
    )


async def ensure_stream(
    js: JetStreamContext, spec: StreamSpec, *, migrate: bool = False
) -> Outcome:
    """Create the stream if it is missing; check it against the spec if it exists."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(stream_config(spec))
        log.info("created stream %s", spec.name)
        return "created"
    drift = stream_drift(spec, info.config)
    if not drift:
        return "unchanged"
    if not migrate:
        raise DriftError("; ".join(drift))
    await js.update_stream(stream_config(spec))
    log.warning("updated stream %s: %s", spec.name, "; ".join(drift))
    return "updated"


async def ensure_consumer(
    js: JetStreamContext, spec: ConsumerSpec, *, migrate: bool = False
) -> Outcome:
    """Create the durable consumer if it is missing; check it if it exists."""
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, consumer_config(spec))
        log.info("created consumer %s/%s", spec.stream, spec.durable)
        return "created"
    drift = consumer_drift(spec, info.config)
    if not drift:
        return "unchanged"
    if not migrate:
        raise DriftError("; ".join(drift))
    await js.add_consumer(spec.stream, consumer_config(spec))
    log.warning("updated consumer %s/%s: %s", spec.stream, spec.durable, "; ".join(drift))
    return "updated"


def bucket_drift(spec: KVSpec, have: js_api.StreamConfig) -> list[str]:
    """Every field where the server's bucket (its stream) differs from the spec."""
    return _diff(
        "bucket",
        spec.bucket,
        [
            ("ttl", spec.ttl_s, have.max_age or 0.0),
            ("history", spec.history, have.max_msgs_per_subject),
            # services read their own keys with direct gets, and registry entries carry a TTL
            ("allow_direct", True, bool(have.allow_direct)),
            ("allow_msg_ttl", True, bool(have.allow_msg_ttl)),
            ("replicas", spec.replicas, have.num_replicas),
        ],
    )


async def ensure_bucket(js: JetStreamContext, spec: KVSpec, *, migrate: bool = False) -> Outcome:
    """Create the KV bucket if it is missing; check its TTL, history and access if it exists."""
    try:
        await js.key_value(spec.bucket)
    except BucketNotFoundError:
        await js.create_key_value(
            js_api.KeyValueConfig(
                bucket=spec.bucket,
                description=spec.description or None,
                history=spec.history,
                ttl=spec.ttl_s or None,
                max_value_size=spec.max_value_size,
                storage=js_api.StorageType.FILE,
                replicas=spec.replicas,
                direct=True,
            )
        )
        log.info("created bucket %s", spec.bucket)
        return "created"
    info = await js.stream_info(kv_stream(spec))
    drift = bucket_drift(spec, info.config)
    if not drift:
        return "unchanged"
    if not migrate:
        raise DriftError("; ".join(drift))
    await js.update_stream(
        info.config.evolve(
            max_age=spec.ttl_s,
            max_msgs_per_subject=spec.history,
            allow_direct=True,
            allow_msg_ttl=True,
            num_replicas=spec.replicas,
        )
    )
    log.warning("updated bucket %s: %s", spec.bucket, "; ".join(drift))
    return "updated"


async def provision(
    js: JetStreamContext,
    *,
    streams: Iterable[StreamSpec] = (),
    consumers: Iterable[ConsumerSpec] = (),
    buckets: Iterable[KVSpec] = (),
    migrate: bool = False,
    replicas: int | None = None,
) -> dict[str, Outcome]:
    """Provision everything given, streams first; return each object's outcome.

    ``replicas`` (from settings: 3 on a 3-node cluster) overrides the specs' replica count for
    every stream and bucket; consumers follow their stream's.
    """
    if replicas is not None:
        streams = [with_replicas(s, replicas) for s in streams]
        buckets = [with_replicas(b, replicas) for b in buckets]
    outcomes: dict[str, Outcome] = {}
    for stream in streams:
        outcomes[f"stream:{stream.name}"] = await ensure_stream(js, stream, migrate=migrate)
    for consumer in consumers:
        key = f"consumer:{consumer.stream}/{consumer.durable}"
        outcomes[key] = await ensure_consumer(js, consumer, migrate=migrate)
    for bucket in buckets:
        outcomes[f"bucket:{bucket.bucket}"] = await ensure_bucket(js, bucket, migrate=migrate)
    return outcomes


async def provision_shared(
    js: JetStreamContext, *, replicas: int | None = None
) -> dict[str, Outcome]:
    """The admin's part: the shared streams and buckets, put back to their spec if they
    drifted (no service may change them; their content is transient or kept as it is)."""
    return await provision(
        js, streams=SHARED_STREAMS, buckets=KV_BUCKETS, migrate=True, replicas=replicas
    )
