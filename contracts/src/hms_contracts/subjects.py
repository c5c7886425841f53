"""Subject builders and wildcards: ``<family>.<namespace>.<rest>``.

Every subject a service uses comes from here; no service types a subject literal.
"""

from __future__ import annotations

from .base import SYSTEM_NAMESPACE
from .errors import SubjectError
from .tokens import check_namespace, check_tokens


class Family:
    """A subject family such as ``ops.metric``: subjects are ``<prefix>.<namespace>.<rest>``."""

    __slots__ = ("prefix", "rest_tokens")

    def __init__(self, prefix: str, rest_tokens: int | None) -> None:
        self.prefix = prefix
        #: how many tokens follow the namespace; None means one or more
        self.rest_tokens = rest_tokens

    def subject(self, namespace: str, rest: str = "") -> str:
        """The concrete subject for a namespace (and the rest, when the family has one)."""
        base = f"{self.prefix}.{check_namespace(namespace)}"
        if self.rest_tokens == 0:
            if rest:
                raise SubjectError(f"{self.prefix} subjects have nothing after the namespace")
            return base
        if not rest:
            raise SubjectError(f"{self.prefix} subjects need a part after the namespace")
        rest = check_tokens(rest, f"{self.prefix} subject part")
        if self.rest_tokens is not None and rest.count(".") + 1 != self.rest_tokens:
            raise SubjectError(
                f"{self.prefix} subjects take {self.rest_tokens} token(s) after the namespace, "
                f"got {rest!r}"
            )
        return f"{base}.{rest}"

    def wildcard(self, namespace: str | None = None) -> str:
        """Everything in the family, in one namespace or (None) in all of them."""
        ns = "*" if namespace is None else check_namespace(namespace)
        return f"{self.prefix}.{ns}" if self.rest_tokens == 0 else f"{self.prefix}.{ns}.>"

    def namespace_of(self, subject: str) -> str:
        """The namespace token of a subject in this family."""
        head = self.prefix + "."
        if not subject.startswith(head):
            raise SubjectError(f"{subject!r} is not in family {self.prefix}")
        return subject[len(head) :].split(".", 1)[0]


METRIC = Family("ops.metric", None)
ALERT = Family("ops.alert", 1)
INCIDENT = Family("ops.incident", 1)
SLA_BREACH = Family("sla.breach", 0)
INCIDENT_CLOSED = Family("incident.closed", 0)
JOB_RUN = Family("job.run", 1)
JOB_EVENT = Family("job.event", 1)
SCALE = Family("ops.scale", 1)
AUDIT = Family("ops.audit", 1)
HEARTBEAT = Family("ops.heartbeat", 1)
CONFIG = Family("ops.config", 1)
EVENT = Family("ops.event", 1)
SLO = Family("ops.slo", 1)
#: a run's fanned-out work items: ``job.item.<ns>.<queue>.<run_key>`` (one subject per run, so
#: the items of a run still to be done are the stream's count on that subject)
JOB_ITEM = Family("job.item", 2)
# console: commands as requests, ops.request.<ns>.<command> (hms_contracts.commands)
REQUEST = Family("ops.request", 1)

FAMILIES: tuple[Family, ...] = (
    METRIC,
    ALERT,
    INCIDENT,
    SLA_BREACH,
    INCIDENT_CLOSED,
    JOB_RUN,
    JOB_EVENT,
    SCALE,
    AUDIT,
    HEARTBEAT,
    CONFIG,
    EVENT,
    SLO,
    JOB_ITEM,
    REQUEST,
)

# --- request/reply (core NATS, no stream; not an event family) ------------------------------

QUERY_METRICS = Family("ops.query.metrics", 0)
"""Metric queries: a MetricQuery sent as a request on ``ops.query.metrics.<ns>``, answered with
a MetricQueryResult by the metrics-collector (so a namespace's clients may ask about their own)."""
#: request/reply: the autoscaler's leader answers with every pool's state (``hms-ops scale
#: status``); outside the ``ops.scale`` family, so no stream captures the requests
SCALE_STATUS = "ops.scale_status.pools"
INCIDENT_COMMAND = Family("ops.incident_cmd", 1)
"""Requests the incident engine answers (core request/reply, never stored):
``ops.incident_cmd.<ns>.<verb>``, verbs in :data:`INCIDENT_VERBS`. Not an event family."""

INCIDENT_VERBS: tuple[str, ...] = (
    "list",
    "show",
    "ack",
    "resolve",
    "approve",
    "audit_verify",
    "audit_export",
)

DLQ_PREFIX = "dlq"
DLQ_ALL = f"{DLQ_PREFIX}.>"


def dlq(subject: str) -> str:
    """Dead-letter subject for a message that arrived on ``subject``."""
    return f"{DLQ_PREFIX}.{subject}"


def heartbeat(service: str) -> str:
    """Subject on which a service announces itself."""
    return HEARTBEAT.subject(SYSTEM_NAMESPACE, service.replace("-", "_"))


def inbox_prefix(service: str) -> str:
    """Per-service reply inbox prefix, so permissions can confine replies to their owner."""
    return f"_INBOX_{service.replace('-', '_')}"


def namespace_inbox_prefix(namespace: str) -> str:
    """Reply inbox prefix of a namespace's clients: ``_INBOX_NS.<ns>`` (the namespace is a
    token of its own, so no service's prefix can ever match it)."""
    return f"_INBOX_NS.{check_namespace(namespace)}"


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` falls under the NATS ``pattern``.

    ``*`` stands for exactly one token, ``>`` (last token only) for one or more; every
    other token must be equal. This is how the server routes, so stream and consumer
    filters can be checked without a server.
    """
    want = pattern.split(".")
    have = subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return i == len(want) - 1 and len(have) > i
        if i >= len(have) or part not in ("*", have[i]):
            return False
    return len(have) == len(want)
