"""Changes to the config registry, as audit events: who applied or deleted which object."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from . import subjects
from .bus import BusEvent
from .config.base import ConfigError, split_key
from .fields import Token
from .subjects import Family

ConfigAction = Literal["applied", "deleted"]


class ConfigChanged(BusEvent):
    """A config object was applied (created or changed) or deleted in the registry.

    The writer publishes it after its write; the id follows the KV revision the write made,
    so a retry dedupes and two writes of the same key never share an id.
    """

    family: ClassVar[Family] = subjects.CONFIG

    key: str = Field(
        max_length=300,
        description="Registry key, <namespace>.<kind>.<name>",
        examples=["usds_unemployment.alert.slow"],
    )
    kind: Token = Field(description="Config kind, e.g. alert")
    name: str = Field(min_length=1, max_length=128, description="Object name within its kind")
    action: ConfigAction = Field(description="applied (created or changed) or deleted")
    generation: int = Field(
        ge=0, description="Generation written (applied) or removed (deleted); 1 for the first"
    )
    revision: int = Field(ge=1, description="KV revision (stream sequence) of the write")
    author: str = Field(
        min_length=1, max_length=256, description="Who wrote it: the writer's NATS user"
    )

    @field_validator("key")
    @classmethod
    def _key_is_a_registry_key(cls, value: str) -> str:
        try:
            split_key(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    def routing_token(self) -> str:
        """``ops.config.<ns>.<kind>``."""
        return self.kind

    def natural_key(self) -> tuple[object, ...]:
        """One event per write: the KV revision is unique in the bucket."""
        return (self.namespace, "config", self.key, self.revision)

    @model_validator(mode="after")
    def _key_matches(self) -> Self:
        namespace, kind, name = split_key(self.key)
        if (namespace, kind, name) != (self.namespace, self.kind, self.name):
            raise ValueError(
                f"key {self.key!r} does not match namespace {self.namespace!r}, "
                f"kind {self.kind!r} and name {self.name!r}"
            )
        return self
