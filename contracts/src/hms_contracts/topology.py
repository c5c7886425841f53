"""Who owns and uses what on the bus, and the least-privilege NATS permissions that follow.

This is the single source for provisioning ownership and for the per-service NATS users
(``hms-ops up`` renders them into the embedded server's config; ``just docs`` writes them to
``infra/nats/permissions.json`` for other deployments).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import specs
from . import subjects as s
from .commands import COMMANDS
from .config import KINDS
from .tokens import check_namespace, check_token


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
    serves: tuple[str, ...] = Field(
        default=(), description="Core subjects it answers requests on (and replies to the asker)"
    )
    config_kinds: tuple[str, ...] = Field(
        default=(), description="Config kinds it follows in the registry (read only)"
    )
    replays: tuple[str, ...] = Field(
        default=(),
        description="Streams it re-reads from a point in time on start (the evaluator rebuilds "
        "its windows), through one consumer of its own, <service>_replay",
    )
    browses: tuple[str, ...] = Field(
        default=(),
        description="Streams it reads from the start with short-lived ordered consumers "
        "(projections rebuilt on start, listings)",
    )
    kv_reads: tuple[str, ...] = Field(
        default=(), description="KV buckets whose keys it reads one by one (direct get)"
    )
    kv_writes: tuple[str, ...] = Field(
        default=(),
        description="KV buckets it writes on behalf of people (the console's config writes)",
    )
    kv_watches: tuple[str, ...] = Field(
        default=(), description="KV buckets whose changes it follows (read only)"
    )
    kv_key_writes: tuple[tuple[str, str], ...] = Field(
        default=(),
        description="(bucket, key pattern) it writes and reads back on behalf of people, and "
        "nothing else of that bucket (the console's queue pauses in hms_job_control)",
    )
    replays_dead_letters: bool = Field(
        default=False,
        description="Puts a dead letter back on its subject (any subject a service consumes) "
        "and removes it from DLQ, for a person (the console's replay)",
    )

    @field_validator("config_kinds")
    @classmethod
    def _known_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(
                f"config_kinds: {', '.join(unknown)} not a config kind; "
                f"known: {', '.join(sorted(KINDS))}"
            )
        return kinds

    @property
    def module(self) -> str:
        """Import name of the service's package."""
        return "hms_" + self.name.replace("-", "_")

    def owned_consumers(self) -> tuple[specs.ConsumerSpec, ...]:
        """Consumer specs this service provisions."""
        return tuple(c for c in specs.CONSUMERS if c.durable in self.consumers)

    def owned_streams(self) -> tuple[specs.StreamSpec, ...]:
        """Stream specs this service provisions (shared streams are the stack admin's)."""
        return tuple(specs.stream_for(n) for n in self.streams)

    def consumed_subjects(self) -> tuple[str, ...]:
        """Subjects it consumes (its durables' filters, its core subscriptions): the only
        subjects whose dead letters it may publish."""
        filters = (f for c in self.owned_consumers() for f in c.filter_subjects)
        config = (specs.config_kind_subjects(k) for k in self.config_kinds)
        return tuple(dict.fromkeys((*filters, *self.subscribes, *self.serves, *config)))


#: the console's commands the incident engine answers
_INCIDENT_COMMANDS = tuple(c for c, owner in COMMANDS.items() if owner == "incident-engine")

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="scheduler",
        singleton=True,
        streams=("JOB_RUNS",),
        reads=("JOB_EVENTS",),
        browses=("JOB_EVENTS",),
        publishes=(s.JOB_RUN.wildcard(), s.JOB_EVENT.wildcard()),
        config_kinds=("job",),
    ),
    ServiceSpec(
        name="worker-pool",
        singleton=False,
        streams=("JOB_EVENTS", "JOB_ITEMS"),
        consumers=("worker_pool", "worker_pool_items"),
        reads=("JOB_RUNS", "DLQ"),
        publishes=(s.JOB_EVENT.wildcard(), s.JOB_ITEM.wildcard()),
        subscribes=(s.JOB_EVENT.wildcard().removesuffix(">") + "cancel_requested",),
        kv_reads=(specs.JOB_CONTROL.bucket,),
    ),
    ServiceSpec(
        name="autoscaler",
        singleton=True,
        streams=("SCALE",),
        # the playbooks' scale requests (ScaleRequested on ops.incident.<ns>.scale)
        consumers=("autoscaler_scale_requests",),
        reads=("JOB_RUNS",),
        # decisions; an alert when a pool's input cannot be read; answers to scale status
        publishes=(s.SCALE.wildcard(), s.ALERT.wildcard()),
        # new work wakes it (no payload read); metric triggers
        subscribes=(s.JOB_RUN.wildcard(), s.METRIC.wildcard()),
        serves=(s.SCALE_STATUS,),
        config_kinds=("scale_policy",),
    ),
    ServiceSpec(
        name="metrics-collector",
        singleton=False,
        streams=("METRICS",),
        consumers=("metrics_collector",),
        publishes=(s.METRIC.wildcard(),),
        serves=(s.QUERY_METRICS.wildcard(),),
        config_kinds=("metric", "scrape_target"),
    ),
    ServiceSpec(
        name="evaluator",
        singleton=True,
        streams=("ALERTS", "SLOS"),
        consumers=("evaluator_metrics", "evaluator_jobs"),
        reads=("METRICS", "JOB_EVENTS", "JOB_RUNS"),
        publishes=(s.ALERT.wildcard(), s.SLA_BREACH.wildcard(), s.SLO.wildcard()),
        config_kinds=("alert", "slo", "job"),
        replays=("METRICS",),
    ),
    ServiceSpec(
        name="incident-engine",
        singleton=True,
        streams=("INCIDENTS", "AUDIT"),
        consumers=("incident_engine_alerts", "incident_engine_escalation"),
        reads=("ALERTS",),
        publishes=(
            s.INCIDENT.wildcard(),
            s.INCIDENT_CLOSED.wildcard(),
            s.AUDIT.wildcard(),
            s.ALERT.wildcard(),  # escalation: a notification not sent in time raises an alert
        ),
        # a playbook's pause_queue / resume_queue: the queue's pause key, nothing else
        kv_key_writes=((specs.JOB_CONTROL.bucket, specs.queue_pause_key("*", "*")),),
        serves=(
            s.INCIDENT_COMMAND.wildcard(),
            # the console's incident commands, carrying who asked
            *(s.REQUEST.wildcard().removesuffix(">") + c for c in _INCIDENT_COMMANDS),
        ),
        config_kinds=("playbook", "alert", "silence", "escalation_policy", "oncall_schedule"),
    ),
    ServiceSpec(
        name="console",
        singleton=False,
        reads=tuple(spec.name for spec in specs.STREAMS),
        # console: commands as requests with the caller's identity, the audit of each change,
        # and HTTP ingest published on the SDK's subjects
        publishes=(
            *(s.REQUEST.wildcard().removesuffix(">") + c for c in COMMANDS),
            s.QUERY_METRICS.wildcard(),  # metric queries the collector answers
            s.AUDIT.wildcard(),
            s.METRIC.wildcard(),
            s.EVENT.wildcard(),
            s.CONFIG.wildcard(),
        ),
        config_kinds=("metric", "alert", "job", "playbook", "slo", "silence"),
        browses=(
            "INCIDENTS",
            "ALERTS",
            "AUDIT",
            "DLQ",
            "JOB_EVENTS",
            "SCALE",
            "METRICS",
            "SLOS",
        ),
        kv_reads=(specs.CONSOLE_TOKENS.bucket,),
        kv_watches=(specs.CONSOLE_TOKENS.bucket,),  # a revocation holds at once
        kv_writes=(specs.CONFIG.bucket,),
        # queue pauses (as hms-ops queues pause): <ns>.queue.<queue>, never a run's approval
        kv_key_writes=((specs.JOB_CONTROL.bucket, specs.queue_pause_key("*", "*")),),
        replays_dead_letters=True,  # as hms-ops dlq replay
        subscribes=(
            s.METRIC.wildcard(),
            s.ALERT.wildcard(),
            s.SLA_BREACH.wildcard(),
            s.SLO.wildcard(),
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
        # create only: an existing stream is never changed by a service (a different config
        # is refused by the server; migrations are the admin's, ``provision(migrate=True)``)
        api.append(f"$JS.API.STREAM.CREATE.{stream}")
    return api


def _consumer_api(stream: str, durable: str) -> list[str]:
    return [
        # a consumer on a stream another service owns: wait for the stream, bind to the durable
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _own_keys_api(bucket: specs.KVSpec, keys: str) -> list[str]:
    """Write and direct-get the keys ``keys`` (a pattern) of a shared bucket; nothing else."""
    subject = f"$KV.{bucket.bucket}.{keys}"
    return [subject, f"$JS.API.DIRECT.GET.{specs.kv_stream(bucket)}.{subject}"]


def _config_read_api(kind: str) -> list[str]:
    """Follow one config kind: direct gets of its keys, and consumers filtered to them.

    Consumers must be created with the filtered form of the create subject
    (``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``): the server refuses a request whose
    filter differs from the subject's, so the permission bounds what the consumer reads. No
    other create form, no consumer listing and no deletion (a watcher's consumer lapses when
    its subscription goes).
    """
    stream = specs.kv_stream(specs.CONFIG)
    keys = specs.config_kind_subjects(kind)
    return [
        f"$JS.API.DIRECT.GET.{stream}.{keys}",
        f"$JS.API.CONSUMER.CREATE.{stream}.*.{keys}",
    ]


def nats_permissions(svc: ServiceSpec) -> dict[str, Any]:
    """Least-privilege NATS permissions for one service's user.

    The service may publish what it emits, its heartbeat and the dead letters of what it
    consumes; use the JetStream API only for the streams and consumers it owns (create, never
    update) or reads; check that the shared streams and buckets exist (the stack's admin
    creates and configures them); write and read back only its own registry entries and its
    own lease; follow (never write) the config kinds it owns; and receive replies only on its
    own inbox prefix.
    """
    publish: list[str] = ["$JS.API.INFO", *svc.publishes, s.heartbeat(svc.name)]
    publish += [s.dlq(subject) for subject in svc.consumed_subjects()]
    for name in svc.streams:
        publish += _stream_api(name, owner=True)
    for name in svc.reads:
        publish += _stream_api(name, owner=False)
    for consumer in svc.owned_consumers():
        publish += _consumer_api(consumer.stream, consumer.durable)
    for shared in specs.SHARED_STREAMS:
        publish.append(f"$JS.API.STREAM.INFO.{shared.name}")
    for bucket in specs.KV_BUCKETS:
        publish.append(f"$JS.API.STREAM.INFO.{specs.kv_stream(bucket)}")
    # an instance's entries are <service>.<instance>: the service name confines it
    publish += _own_keys_api(specs.SERVICE_REGISTRY, specs.registry_key(svc.name, ">"))
    if svc.singleton:
        publish += _own_keys_api(specs.LEASES, specs.lease_key(svc.name))
    for kind in svc.config_kinds:
        publish += _config_read_api(kind)
    for stream in svc.replays:
        name = specs.replay_consumer(svc.name)
        publish += [
            f"$JS.API.CONSUMER.CREATE.{stream}.{name}.>",
            f"$JS.API.CONSUMER.DELETE.{stream}.{name}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
        ]
    for stream in svc.browses:
        # ordered consumers: created unnamed, deleted when done, flow-controlled
        publish += [
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.DELETE.{stream}.>",
            f"$JS.FC.{stream}.>",
        ]
    for name in svc.kv_reads:
        publish.append(f"$JS.API.DIRECT.GET.KV_{name}.$KV.{name}.>")
    for name in svc.kv_writes:
        publish += [
            f"$KV.{name}.>",
            f"$JS.API.DIRECT.GET.KV_{name}.$KV.{name}.>",
            f"$JS.API.CONSUMER.CREATE.KV_{name}.*.$KV.{name}.>",
            f"$JS.FC.KV_{name}.>",
        ]
    for name in svc.kv_watches:
        # a named consumer whose filter is in the create subject: it reads what direct gets
        # of the same bucket read already, and nothing else
        publish.append(f"$JS.API.CONSUMER.CREATE.KV_{name}.*.$KV.{name}.>")
    buckets = {b.bucket: b for b in specs.KV_BUCKETS}
    for bucket_name, keys in svc.kv_key_writes:
        publish += _own_keys_api(buckets[bucket_name], keys)
    if svc.replays_dead_letters:
        publish.append(f"$JS.API.STREAM.MSG.DELETE.{specs.DLQ.name}")
        # what a durable consumer dead-letters is a stream's subject it filters on
        publish += [
            subject
            for other in SERVICES
            for consumer in other.owned_consumers()
            for subject in consumer.filter_subjects
        ]
    subscribe = [f"{s.inbox_prefix(svc.name)}.>", *svc.subscribes, *svc.serves]
    perms: dict[str, Any] = {
        "publish": {"allow": sorted(dict.fromkeys(publish))},
        "subscribe": {"allow": sorted(dict.fromkeys(subscribe))},
    }
    if svc.serves:
        # one reply per request received, to whatever inbox the asker named
        perms["allow_responses"] = {"max": 1, "expires": "1m"}
    return perms


# --- namespace clients ----------------------------------------------------------------------

CONFIG_BUCKET = specs.CONFIG.bucket
"""The config registry's KV bucket."""

#: what a namespace client's durable subscriptions read: (stream, family, consumer suffix)
_DURABLE_FEEDS: tuple[tuple[str, s.Family, str], ...] = (
    (specs.INCIDENTS.name, s.INCIDENT, "incidents"),
    (specs.INCIDENTS.name, s.INCIDENT_CLOSED, "closed"),
    (specs.ALERTS.name, s.SLA_BREACH, "breaches"),
)


def namespace_user(namespace: str) -> str:
    """The NATS user of a namespace's clients: ``ns-<namespace>``."""
    return f"ns-{check_namespace(namespace)}"


def durable_consumers(namespace: str, durable: str) -> dict[str, tuple[str, str]]:
    """The consumers behind one durable subscription of a namespace's client, by feed
    (``incidents``, ``closed``, ``breaches``): ``(stream, consumer name)``.

    A consumer's name is one subject token of the JetStream API, and NATS permissions match
    whole tokens only, so "names starting with the namespace" cannot be granted: each durable
    is declared with the client (``hms-ops namespaces create NS --durable NAME``) and granted
    by its exact names, ``<namespace>-<durable>-<feed>`` ('-' never occurs in a namespace).
    """
    check_namespace(namespace)
    check_token(durable, "durable name")
    if "." in durable or len(durable) > 40:
        raise ValueError(f"durable name {durable!r} must be one token of at most 40 characters")
    return {feed: (stream, f"{namespace}-{durable}-{feed}") for stream, _, feed in _DURABLE_FEEDS}


def durable_filter(namespace: str, feed: str) -> str:
    """The one subject a namespace's durable consumer of ``feed`` reads."""
    for _, family, name in _DURABLE_FEEDS:
        if name == feed:
            return family.wildcard(namespace)
    raise KeyError(f"no durable feed {feed!r}")


def namespace_permissions(
    namespace: str, durables: tuple[str, ...] = ()
) -> dict[str, dict[str, list[str]]]:
    """NATS permissions of a namespace's client: its own and nothing else.

    It may publish its metrics and its own events; read and write its own config keys (direct
    gets, and watchers created with its own keys as the filter token); receive its alerts,
    incidents, breaches and closures; and run the durable subscriptions declared for it, each
    by exact consumer name and filter. It gets no stream info (a subject listing would name
    other namespaces' keys), no other stream, bucket or consumer, and replies only on its own
    inbox prefix.
    """
    ns = check_namespace(namespace)
    kv_stream = f"KV_{CONFIG_BUCKET}"
    own_keys = f"$KV.{CONFIG_BUCKET}.{ns}.>"
    publish = [
        s.METRIC.wildcard(ns),
        s.EVENT.wildcard(ns),
        s.CONFIG.wildcard(ns),  # the audit record of each change it makes
        s.QUERY_METRICS.subject(ns),  # queries over its own stored metrics
        own_keys,
        f"$JS.API.DIRECT.GET.{kv_stream}.{own_keys}",
        f"$JS.API.CONSUMER.CREATE.{kv_stream}.*.{own_keys}",
        f"$JS.FC.{kv_stream}.>",
        s.INCIDENT_COMMAND.wildcard(ns),  # incidents list|show|ack|resolve, audit verify
    ]
    for durable in durables:
        for feed, (stream, name) in durable_consumers(ns, durable).items():
            publish += [
                f"$JS.API.CONSUMER.CREATE.{stream}.{name}.{durable_filter(ns, feed)}",
                f"$JS.API.CONSUMER.INFO.{stream}.{name}",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
                f"$JS.ACK.{stream}.{name}.>",
            ]
    subscribe = [
        f"{s.namespace_inbox_prefix(ns)}.>",
        s.ALERT.wildcard(ns),
        s.INCIDENT.wildcard(ns),
        s.SLA_BREACH.wildcard(ns),
        s.INCIDENT_CLOSED.wildcard(ns),
    ]
    return {
        "publish": {"allow": sorted(dict.fromkeys(publish))},
        "subscribe": {"allow": sorted(dict.fromkeys(subscribe))},
    }
