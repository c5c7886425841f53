"""Events an agency system publishes about itself through the SDK (``noc.publish``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from . import subjects
from .bus import BusEvent
from .fields import Slug, Token
from .subjects import Family


class AgencyEvent(BusEvent):
    """A fact an agency system reports about itself (a deploy, a batch done, a flag flipped)."""

    family: ClassVar[Family] = subjects.EVENT

    name: Token = Field(description="What happened, one subject token, e.g. deploy_finished")
    key: Slug = Field(
        description="Idempotency key chosen by the publisher: a retry of the same fact carries "
        "the same key (the SDK makes a random one when none is given)"
    )
    payload: dict[str, JsonValue] = Field(
        default_factory=dict, description="The fact's details, as JSON (at most 64 KiB)"
    )

    def routing_token(self) -> str:
        """``ops.event.<ns>.<name>``."""
        return self.name

    def natural_key(self) -> tuple[object, ...]:
        """One event per name and key."""
        return (self.namespace, "event", self.name, self.key)
