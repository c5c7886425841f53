"""The base every event shares: identity, time, namespace and schema version."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from .tokens import NAMESPACE_PATTERN, check_namespace

Namespace = Annotated[
    str,
    AfterValidator(check_namespace),
    Field(
        description="Agency system and environment, e.g. usds_unemployment or "
        "usds_unemployment_staging; a subject token, so NATS permissions can confine a "
        "client to it",
        examples=["usds_unemployment"],
        # documented in the schema; checked by check_namespace, whose message is clearer
        json_schema_extra={"pattern": NAMESPACE_PATTERN},
    ),
]

SYSTEM_NAMESPACE = "system"
"""Namespace of the control plane's own events (heartbeats, provisioning)."""


def deterministic_id(*parts: object) -> str:
    """Return a stable id built from the parts that make an event unique.

    The same inputs give the same id on every host and every retry, so JetStream
    dedupe (``Nats-Msg-Id``) and the consumers' UNIQUE keys both see a repeat as a repeat.
    Short human-readable parts are kept as they are; anything else is hashed.
    """
    text = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    if len(text) <= 120 and all(c.isalnum() or c in "_-.:@|+" for c in text):
        return text
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Event(BaseModel):
    """Fields every event on the bus carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str = Field(
        min_length=1,
        max_length=256,
        description="Deterministic id of the event, sent as Nats-Msg-Id and checked by every "
        "consumer against a UNIQUE key; a retry of the same fact carries the same id",
    )
    occurred_at: AwareDatetime = Field(
        description="When the fact happened, timezone-aware (UTC on the wire)"
    )
    namespace: Namespace
    schema_version: int = Field(
        default=1,
        ge=1,
        description="Version of this event's schema; consumers reject versions they do not know",
    )
