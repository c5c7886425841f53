"""Streams, consumers and KV buckets, as data. The service kit provisions them."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import subjects as s

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamSpec(_Spec):
    """A JetStream stream."""

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="Stream name")
    subjects: tuple[str, ...] = Field(min_length=1, description="Subjects the stream captures")
    retention: Literal["limits", "workqueue", "interest"] = Field(
        default="limits", description="What removes messages: limits, ack (workqueue) or interest"
    )
    storage: Literal["file", "memory"] = Field(default="file", description="Storage backend")
    max_age_s: float = Field(default=7 * DAY, ge=0, description="Oldest message kept, seconds")
    max_msgs: int = Field(default=-1, description="Most messages kept (-1: no limit)")
    max_bytes: int = Field(default=-1, description="Most bytes kept (-1: no limit)")
    max_msg_size: int = Field(default=1024 * 1024, description="Largest message accepted, bytes")
    duplicate_window_s: float = Field(
        default=2 * MINUTE, gt=0, description="Window in which Nats-Msg-Id dedupes, seconds"
    )
    discard: Literal["old", "new"] = Field(default="old", description="What goes when full")
    replicas: int = Field(default=1, ge=1, le=5, description="Replicas (3 in a cluster)")
    deny_delete: bool = Field(default=False, description="Refuse deleting single messages")
    deny_purge: bool = Field(default=False, description="Refuse purging the stream")
    description: str = Field(default="", description="What the stream holds")

    @model_validator(mode="after")
    def _window_within_age(self) -> StreamSpec:
        if self.max_age_s and self.duplicate_window_s > self.max_age_s:
            raise ValueError(f"stream {self.name}: duplicate window exceeds max age")
        return self


class ConsumerSpec(_Spec):
    """A durable pull consumer on a stream."""

    stream: str = Field(description="Stream the consumer reads")
    durable: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Durable consumer name")
    filter_subjects: tuple[str, ...] = Field(default=(), description="Subjects it receives")
    ack_wait_s: float = Field(default=30.0, gt=0, description="Redelivery after this, seconds")
    max_deliver: int = Field(default=5, ge=1, description="Deliveries before giving up")
    backoff_s: tuple[float, ...] = Field(
        default=(), description="Redelivery delays; at most max_deliver entries"
    )
    max_ack_pending: int = Field(default=1000, ge=1, description="Unacked messages in flight")
    deliver_policy: Literal["all", "new"] = Field(default="all", description="Where it starts")
    description: str = Field(default="", description="What the consumer is for")

    @model_validator(mode="after")
    def _backoff_fits(self) -> ConsumerSpec:
        if len(self.backoff_s) > self.max_deliver:
            raise ValueError(f"consumer {self.durable}: more backoff steps than max_deliver")
        # the server takes the first backoff step as the ack wait of the first delivery
        if self.backoff_s and self.backoff_s[0] != self.ack_wait_s:
            raise ValueError(
                f"consumer {self.durable}: the first backoff step must equal ack_wait_s "
                f"({self.backoff_s[0]} != {self.ack_wait_s}); the server uses it as the ack wait"
            )
        return self


class KVSpec(_Spec):
    """A JetStream key-value bucket."""

    bucket: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Bucket name")
    ttl_s: float = Field(default=0.0, ge=0, description="Entry lifetime, seconds (0: forever)")
    history: int = Field(default=1, ge=1, le=64, description="Revisions kept per key")
    max_value_size: int = Field(default=64 * 1024, description="Largest value, bytes")
    replicas: int = Field(default=1, ge=1, le=5, description="Replicas (3 in a cluster)")
    description: str = Field(default="", description="What the bucket holds")


# --- the catalogue -------------------------------------------------------------------------

JOB_RUNS = StreamSpec(
    name="JOB_RUNS",
    subjects=(s.JOB_RUN.wildcard(),),
    retention="workqueue",
    max_age_s=2 * DAY,
    duplicate_window_s=10 * MINUTE,
    description="Work items waiting for a worker; removed when a worker acks them",
)
JOB_ITEMS = StreamSpec(
    name="JOB_ITEMS",
    subjects=(s.JOB_ITEM.wildcard(),),
    retention="workqueue",
    max_age_s=2 * DAY,
    duplicate_window_s=10 * MINUTE,
    description="Work items runs fanned out, one subject per run; removed when a worker acks "
    "them, so a run's count on its subject is what is left to do",
)
JOB_EVENTS = StreamSpec(
    name="JOB_EVENTS",
    subjects=(s.JOB_EVENT.wildcard(),),
    max_age_s=30 * DAY,
    duplicate_window_s=10 * MINUTE,
    description="Run lifecycle: scheduled, started, progress, completed, failed, dead-lettered",
)
METRICS = StreamSpec(
    name="METRICS",
    subjects=(s.METRIC.wildcard(),),
    max_age_s=1 * DAY,
    max_msg_size=4 * 1024 * 1024,
    description="Batches of metric samples, scraped or pushed",
)
ALERTS = StreamSpec(
    name="ALERTS",
    subjects=(s.ALERT.wildcard(), s.SLA_BREACH.wildcard()),
    max_age_s=90 * DAY,
    description="Alerts firing and resolved, SLA breaches",
)
INCIDENTS = StreamSpec(
    name="INCIDENTS",
    subjects=(s.INCIDENT.wildcard(), s.INCIDENT_CLOSED.wildcard()),
    max_age_s=365 * DAY,
    description="Incident lifecycle: opened, updated, step, escalated, closed",
)
AUDIT = StreamSpec(
    name="AUDIT",
    subjects=(s.AUDIT.wildcard(),),
    max_age_s=0,
    discard="new",
    deny_delete=True,
    deny_purge=True,
    description="Tamper-evident audit records (hash chained), kept forever; deletes refused",
)
SCALE = StreamSpec(
    name="SCALE",
    subjects=(s.SCALE.wildcard(),),
    max_age_s=30 * DAY,
    description="Scaling decisions",
)
DLQ = StreamSpec(
    name="DLQ",
    subjects=(s.DLQ_ALL,),
    max_age_s=30 * DAY,
    description="Messages no consumer could accept, with the reason in headers",
)
CONFIG_CHANGES = StreamSpec(
    name="CONFIG_CHANGES",
    subjects=(s.CONFIG.wildcard(),),
    max_age_s=0,
    discard="new",
    description="Audit of the config registry: each object applied or deleted, by whom",
)

EVENTS = StreamSpec(
    name="EVENTS",
    subjects=(s.EVENT.wildcard(),),
    max_age_s=30 * DAY,
    max_msg_size=64 * 1024,
    description="Agency systems' own events (noc.publish), per namespace",
)

# --- the evaluator's SLO status (issue 9) ---
SLOS = StreamSpec(
    name="SLOS",
    subjects=(s.SLO.wildcard(),),
    max_age_s=30 * DAY,
    description="Compliance status of each SLO (green, yellow, red; budget left) for dashboards",
)

STREAMS: tuple[StreamSpec, ...] = (
    JOB_RUNS,
    JOB_EVENTS,
    METRICS,
    ALERTS,
    INCIDENTS,
    AUDIT,
    SCALE,
    DLQ,
    CONFIG_CHANGES,
    EVENTS,
    SLOS,
    JOB_ITEMS,
)

WORKER_RUNS = ConsumerSpec(
    stream="JOB_RUNS",
    durable="worker_pool",
    filter_subjects=(s.JOB_RUN.wildcard(),),
    ack_wait_s=60.0,
    max_deliver=5,
    backoff_s=(60.0, 120.0, 300.0, 600.0),
    max_ack_pending=1000,
    description="Workers pull runs from here in batches",
)
EVALUATOR_METRICS = ConsumerSpec(
    stream="METRICS",
    durable="evaluator_metrics",
    filter_subjects=(s.METRIC.wildcard(),),
    ack_wait_s=30.0,
    max_deliver=5,
    deliver_policy="new",
    max_ack_pending=10000,
    description="Metric batches for rule evaluation",
)
EVALUATOR_JOBS = ConsumerSpec(
    stream="JOB_EVENTS",
    durable="evaluator_jobs",
    filter_subjects=(s.JOB_EVENT.wildcard(),),
    description="Run lifecycle for deadline tracking",
)
INCIDENT_ALERTS = ConsumerSpec(
    stream="ALERTS",
    durable="incident_engine_alerts",
    filter_subjects=(s.ALERT.wildcard(), s.SLA_BREACH.wildcard()),
    backoff_s=(30.0, 60.0, 120.0),
    description="Alerts and breaches that open or update incidents",
)

METRICS_STORE = ConsumerSpec(
    stream="METRICS",
    durable="metrics_collector",
    filter_subjects=(s.METRIC.wildcard(),),
    ack_wait_s=30.0,
    max_deliver=5,
    max_ack_pending=10000,
    description="Metric batches, scraped or pushed, into the collector's queryable store",
)
WORKER_ITEMS = ConsumerSpec(
    stream="JOB_ITEMS",
    durable="worker_pool_items",
    filter_subjects=(s.JOB_ITEM.wildcard(),),
    ack_wait_s=60.0,
    max_deliver=5,
    backoff_s=(60.0, 120.0, 300.0, 600.0),
    max_ack_pending=10000,
    description="Workers pull runs' fanned-out work items from here in batches of 100",
)
# escalation: the incident lifecycle that starts and stops escalation policies
INCIDENT_ESCALATION = ConsumerSpec(
    stream="INCIDENTS",
    durable="incident_engine_escalation",
    filter_subjects=(
        s.INCIDENT.wildcard().removesuffix(">") + "opened",
        s.INCIDENT.wildcard().removesuffix(">") + "updated",
        s.INCIDENT.wildcard().removesuffix(">") + "notify",  # a playbook's notify step
        s.INCIDENT_CLOSED.wildcard(),
    ),
    backoff_s=(30.0, 60.0, 120.0),
    description="Incidents opened, acknowledged and closed (start and stop escalation), and the "
    "playbooks' notify requests (delivered like escalation's messages)",
)

# autoscaler: the playbooks' scale steps, each a floor for its pool for a while
AUTOSCALER_SCALE_REQUESTS = ConsumerSpec(
    stream="INCIDENTS",
    durable="autoscaler_scale_requests",
    filter_subjects=(
        s.INCIDENT.wildcard().removesuffix(">") + "scale",
        s.INCIDENT_CLOSED.wildcard(),
    ),
    backoff_s=(30.0, 60.0, 120.0),
    description="Playbooks' scale requests (the requested count floors the pool for a while) "
    "and incidents closed (their requests end with them)",
)

CONSUMERS: tuple[ConsumerSpec, ...] = (
    WORKER_RUNS,
    METRICS_STORE,
    WORKER_ITEMS,
    EVALUATOR_METRICS,
    EVALUATOR_JOBS,
    INCIDENT_ALERTS,
    INCIDENT_ESCALATION,
    AUTOSCALER_SCALE_REQUESTS,
)

LEASES = KVSpec(
    bucket="hms_leases",
    ttl_s=10.0,
    history=1,
    description="Singleton leases: one holder per key, renewed by compare-and-swap, lapsing on TTL",
)
SERVICE_REGISTRY = KVSpec(
    bucket="hms_services",
    ttl_s=0.0,
    history=1,
    description=(
        "Service registry: each instance's latest heartbeat; every entry carries its own TTL, "
        "a multiple of the instance's heartbeat interval, so it is gone when it stops beating"
    ),
)

CONFIG = KVSpec(
    bucket="hms_config",
    history=64,
    max_value_size=256 * 1024,
    description=(
        "The config registry: every config object (metric, alert, playbook, ...) under "
        "<namespace>.<kind>.<name>, each value a ConfigEntry (object, generation, author, time); "
        "64 versions kept per key"
    ),
)

# console: API tokens, each under its id, holding only a bcrypt hash of the secret
CONSOLE_TOKENS = KVSpec(
    bucket="hms_console_tokens",
    history=1,
    description=(
        "The console's API tokens by id: role, namespace, expiry and a bcrypt hash of the "
        "secret (the token itself is printed once, never stored)"
    ),
)

JOB_CONTROL = KVSpec(
    bucket="hms_job_control",
    history=16,
    description=(
        "People's hands on the work: <ns>.queue.<queue> while a queue is paused (it hands out "
        "nothing until the key is gone), <ns>.approval.<run_key> once a run awaiting approval "
        "is approved; each value says who and when"
    ),
)

KV_BUCKETS: tuple[KVSpec, ...] = (LEASES, SERVICE_REGISTRY, CONFIG, CONSOLE_TOKENS, JOB_CONTROL)


def queue_pause_key(namespace: str, queue: str) -> str:
    """Key in ``hms_job_control`` present while ``queue`` of ``namespace`` is paused."""
    return f"{namespace}.queue.{queue}"


def approval_key(namespace: str, run_key: str) -> str:
    """Key in ``hms_job_control`` present once the run (``hms_contracts.run_key``) is approved."""
    return f"{namespace}.approval.{run_key}"


#: Streams no service owns: the stack's admin creates and configures them (``hms-ops up`` or
#: ``hms-ops provision``), services only check that they exist. The KV buckets are shared too.
SHARED_STREAMS: tuple[StreamSpec, ...] = (DLQ, CONFIG_CHANGES, EVENTS)

#: A heartbeat older than this many of its intervals is stale (the instance stopped beating).
STALE_AFTER_BEATS = 3
#: A registry entry lapses (its per-message TTL) after this many of its heartbeat intervals.
LAPSE_AFTER_BEATS = 10


def registry_key(service: str, instance_id: str) -> str:
    """Key of one instance in the service registry: ``<service>.<instance>``.

    The service name leads, so NATS permissions confine each service to ``<service>.>``.
    """
    return f"{service}.{instance_id}"


def lease_key(service: str) -> str:
    """Key of a singleton's lease: the service name (permissions allow only its own)."""
    return service


def replay_consumer(service: str) -> str:
    """Name of the consumer through which a service re-reads a stream from a point in time
    (``ServiceSpec.replays``): ``<service>_replay``."""
    return f"{service.replace('-', '_')}_replay"


def config_subject(key: str) -> str:
    """The KV subject under which the config registry stores ``key``."""
    return f"$KV.{CONFIG.bucket}.{key}"


def config_kind_subjects(kind: str) -> str:
    """The KV subjects of every object of one config kind, in every namespace."""
    return config_subject(f"*.{kind}.>")


def kv_stream(bucket: KVSpec) -> str:
    """Name of the JetStream stream behind a KV bucket."""
    return f"KV_{bucket.bucket}"


def stream_for(name: str) -> StreamSpec:
    """The stream spec with this name."""
    for spec in STREAMS:
        if spec.name == name:
            return spec
    raise KeyError(f"no stream named {name!r} in the catalogue")


# --- clustered deployments -----------------------------------------------------------------

_Replicated = TypeVar("_Replicated", StreamSpec, KVSpec)


def with_replicas(spec: _Replicated, replicas: int) -> _Replicated:
    """The spec with ``replicas`` copies of its data (the catalogue says 1: one server).

    On a 3-node NATS cluster every stream and bucket is provisioned with 3 replicas, so a
    message acknowledged by the stream is on a majority of the nodes and survives one node's
    loss; the count comes from settings (``stream_replicas``), never from the catalogue.
    """
    if not 1 <= replicas <= 5:
        raise ValueError(f"replicas must be between 1 and 5, got {replicas}")
    return spec.model_copy(update={"replicas": replicas})
