"""What every catalogued event adds to :class:`Event`: its subject and its deterministic id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import ValidationInfo

from .base import Event, deterministic_id
from .subjects import Family

_DRAFT = "hms_contracts.draft"
"""Validation-context flag: the event_id (and derived fields) are about to be filled in."""


def is_draft(info: ValidationInfo) -> bool:
    """Whether validation runs inside :meth:`BusEvent.create`, before the id exists."""
    return isinstance(info.context, dict) and bool(info.context.get(_DRAFT))


class BusEvent(Event):
    """An event in the catalogue: it knows its subject and how its id is made.

    Subjects are ``<family>.<namespace>.<rest>``; the rest is the class's ``event_type``
    token when the family names events (``ops.alert.<ns>.firing``), or a routing token
    taken from the payload (``job.run.<ns>.<queue>``), or nothing (``sla.breach.<ns>``).
    """

    family: ClassVar[Family]
    event_type: ClassVar[str | None] = None

    def routing_token(self) -> str:
        """The subject's rest when the family routes on a payload field (override)."""
        return ""

    def subject(self) -> str:
        """The concrete subject this event is published on."""
        return self.family.subject(self.namespace, self.event_type or self.routing_token())

    @classmethod
    def subject_pattern(cls, namespace: str | None = None) -> str:
        """The NATS pattern matching exactly this event's subjects (all namespaces by default)."""
        wildcard = cls.family.wildcard(namespace)
        if cls.event_type is not None:
            return wildcard.removesuffix(">") + cls.event_type
        if cls.family.rest_tokens == 1:
            return wildcard.removesuffix(">") + "*"
        return wildcard

    def natural_key(self) -> tuple[object, ...]:
        """The parts that make this fact unique; a retry of the fact has the same parts."""
        raise NotImplementedError(f"{type(self).__name__} defines no natural key")

    def expected_event_id(self) -> str:
        """The deterministic id this event should carry (see :func:`deterministic_id`)."""
        # One instant written with two offsets is one fact: key times are taken in UTC.
        parts = (p.astimezone(UTC) if isinstance(p, datetime) else p for p in self.natural_key())
        return deterministic_id(*parts)

    @classmethod
    def create(cls, **fields: Any) -> Self:
        """Validate ``fields`` and return the event with its deterministic ``event_id``.

        The one way producers should build events: the id comes from the natural key, so a
        retry, a standby or a replay produces the same id and dedupes.
        """
        if "event_id" in fields:
            raise TypeError(f"{cls.__name__}.create() computes event_id; do not pass it")
        draft = cls.model_validate({"event_id": "draft", **fields}, context={_DRAFT: True})
        return draft._finish()

    def _finish(self) -> Self:
        # model_copy skips validation; the only changed field is computed from validated ones.
        return self.model_copy(update={"event_id": self.expected_event_id()})
