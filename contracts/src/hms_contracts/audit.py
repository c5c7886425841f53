"""The tamper-evident audit log: hash-chained records, one chain per namespace."""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Self

from pydantic import Field, ValidationInfo, model_validator

from . import subjects
from .bus import BusEvent, is_draft
from .fields import Sha256Hex, Slug, Text
from .subjects import Family

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first audit record of a namespace."""


class AuditRecorded(BusEvent):
    """An entry in a namespace's tamper-evident, hash-chained audit log.

    ``hash`` is the SHA-256 of the record's canonical JSON (every field but ``event_id``
    and ``hash``), and covers ``prev_hash``, so changing any record breaks the chain.
    Build records with AuditRecorded.chain().
    """

    family: ClassVar[Family] = subjects.AUDIT
    event_type: ClassVar[str | None] = "recorded"

    sequence: int = Field(ge=1, description="Position in the namespace's chain, from 1")
    actor: Text = Field(description="Who acted: a user, or a service name")
    action: Slug = Field(description="What was done, e.g. playbook.step_ran, incident.ack")
    target: Text = Field(description="What it was done to, e.g. an incident id")
    detail: dict[str, str] = Field(default_factory=dict, description="Particulars, masked")
    prev_hash: Sha256Hex = Field(description="hash of the previous record (64 zeros for the first)")
    hash: Sha256Hex = Field(description="SHA-256 hex of this record's canonical JSON")

    @model_validator(mode="after")
    def _hash_holds(self, info: ValidationInfo) -> Self:
        if (self.sequence == 1) != (self.prev_hash == GENESIS_HASH):
            raise ValueError("prev_hash is 64 zeros exactly for the record with sequence 1")
        if not is_draft(info) and self.hash != self.computed_hash():
            raise ValueError("hash does not match the record's content: the record was altered")
        return self

    def computed_hash(self) -> str:
        """SHA-256 hex of the canonical JSON of every field but event_id and hash."""
        body = self.model_dump(mode="json", exclude={"event_id", "hash"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def natural_key(self) -> tuple[object, ...]:
        """One record per position in the chain."""
        return (self.namespace, "audit", self.sequence)

    @classmethod
    def chain(cls, previous: AuditRecorded | None, **fields: object) -> AuditRecorded:
        """The record following ``previous`` (None for the first): sequence, prev_hash,
        hash and event_id are filled in; pass namespace, occurred_at, actor, action, target
        and optionally detail."""
        links = {"sequence": 1, "prev_hash": GENESIS_HASH}
        if previous is not None:
            links = {"sequence": previous.sequence + 1, "prev_hash": previous.hash}
        return cls.create(**fields, **links, hash=GENESIS_HASH)

    def _finish(self) -> Self:
        return self.model_copy(
            update={"event_id": self.expected_event_id(), "hash": self.computed_hash()}
        )
