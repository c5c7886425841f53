"""Who owns and uses what on the bus, and the least-privilege NATS permissions that follow.

This is the single source for provisioning ownership and for the per-service NATS users
(``hms-ops up`` renders them into the embedded server's config; ``just docs`` writes them to
``infra/nats/permissions.json`` for other deployments).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from . import specs
from . import subjects as s


class ServiceSpec(BaseModel):
    """A service's place on the bus."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Service name")
    singleton: bool = Field(description="Decisions made once: holds a lease, standbys wait")
    streams: tuple[str, ...] = Field(default=(), description="Streams it owns and provisions")
    consumers: tuple[str, ...] = Field(default=(), description="Durable consumers it owns")
    reads: tuple[str, ...] = Field(default=(), description="Streams it only inspects or reads")
    publishes: tuple[str, ...] = Field(default=(), description="Subjects it may publish")
    subscribes: tuple[str, ...] = Field(default=(), description="Core subjects it may subscribe")

    @property
    def module(self) -> str:
        """Import name of the service's package."""
        return "hms_" + self.name.replace("-", "_")

    def owned_consumers(self) -> tuple[specs.ConsumerSpec, ...]:
        """Consumer specs this service provisions."""
        return tuple(c for c in specs.CONSUMERS if c.durable in self.consumers)

    def owned_streams(self) -> tuple[specs.StreamSpec, ...]:
        """Stream specs this service provisions (the DLQ is everyone's)."""
        return tuple(specs.stream_for(n) for n in (*self.streams, specs.DLQ.name))


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="scheduler",
        singleton=True,
        streams=("JOB_RUNS",),
        reads=("JOB_EVENTS",),
        publishes=(s.JOB_RUN.wildcard(), s.JOB_EVENT.wildcard()),
    ),
    ServiceSpec(
        name="worker-pool",
        singleton=False,
        streams=("JOB_EVENTS",),
        consumers=("worker_pool",),
        reads=("JOB_RUNS",),
        publishes=(s.JOB_EVENT.wildcard(),),
    ),
    ServiceSpec(
        name="autoscaler",
        singleton=True,
        streams=("SCALE",),
        reads=("JOB_RUNS",),
        publishes=(s.SCALE.wildcard(),),
    ),
    ServiceSpec(
        name="metrics-collector",
        singleton=False,
        streams=("METRICS",),
        publishes=(s.METRIC.wildcard(),),
    ),
    ServiceSpec(
        name="evaluator",
        singleton=True,
        streams=("ALERTS",),
        consumers=("evaluator_metrics", "evaluator_jobs"),
        reads=("METRICS", "JOB_EVENTS"),
        publishes=(s.ALERT.wildcard(), s.SLA_BREACH.wildcard()),
    ),
    ServiceSpec(
        name="incident-engine",
        singleton=True,
        streams=("INCIDENTS", "AUDIT"),
        consumers=("incident_engine_alerts",),
        reads=("ALERTS",),
        publishes=(s.INCIDENT.wildcard(), s.INCIDENT_CLOSED.wildcard(), s.AUDIT.wildcard()),
    ),
    ServiceSpec(
        name="console",
        singleton=False,
        reads=tuple(spec.name for spec in specs.STREAMS),
        subscribes=(
            s.METRIC.wildcard(),
            s.ALERT.wildcard(),
            s.SLA_BREACH.wildcard(),
            s.INCIDENT.wildcard(),
            s.INCIDENT_CLOSED.wildcard(),
            s.JOB_EVENT.wildcard(),
            s.SCALE.wildcard(),
            s.HEARTBEAT.wildcard(),
        ),
    ),
)

SERVICE_NAMES: tuple[str, ...] = tuple(svc.name for svc in SERVICES)


def service(name: str) -> ServiceSpec:
    """The spec of the named service."""
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")


def _stream_api(stream: str, *, owner: bool) -> list[str]:
    api = [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.NAMES.{stream}",
        f"$JS.API.CONSUMER.LIST.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
    ]
    if owner:
        api += [f"$JS.API.STREAM.CREATE.{stream}", f"$JS.API.STREAM.UPDATE.{stream}"]
    return api


def _consumer_api(stream: str, durable: str) -> list[str]:
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _bucket_api(bucket: str) -> list[str]:
    stream = f"KV_{bucket}"
    return [
        *_stream_api(stream, owner=True),
        f"$KV.{bucket}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
    ]


def nats_permissions(svc: ServiceSpec) -> dict[str, dict[str, list[str]]]:
    """Least-privilege NATS permissions for one service's user.

    The service may publish what it emits, its heartbeat and dead letters, use the JetStream
    API only for the streams, consumers and buckets it owns or reads, and receive replies
    only on its own inbox prefix.
    """
    publish: list[str] = ["$JS.API.INFO", *svc.publishes, s.heartbeat(svc.name), s.DLQ_ALL]
    for name in (*svc.streams, specs.DLQ.name):
        publish += _stream_api(name, owner=True)
    for name in svc.reads:
        publish += _stream_api(name, owner=False)
    for consumer in svc.owned_consumers():
        publish += _consumer_api(consumer.stream, consumer.durable)
    for bucket in specs.KV_BUCKETS:
        publish += _bucket_api(bucket.bucket)
    subscribe = [f"{s.inbox_prefix(svc.name)}.>", *svc.subscribes]
    return {
        "publish": {"allow": sorted(dict.fromkeys(publish))},
        "subscribe": {"allow": sorted(dict.fromkeys(subscribe))},
    }
