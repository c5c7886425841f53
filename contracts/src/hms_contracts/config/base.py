"""What every config object shares: identity (kind, namespace, name), its registry key, and the
envelope it is stored in (generation, author, time)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from hms_contracts.base import Namespace
from hms_contracts.errors import ContractError
from hms_contracts.tokens import check_namespace

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,127}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


class ConfigError(ContractError):
    """A config object or registry key is invalid; the message names the field."""


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value or value.endswith("."):
        raise ValueError(
            f"name {value!r} must be 1-128 characters of lower-case letters, digits, '_', '-' "
            "and '.', start with a letter or digit, and not end with '.' (it is part of a "
            "registry key)"
        )
    return value


ObjectName = Annotated[
    str,
    AfterValidator(_check_name),
    Field(
        description="Name of the object, unique per namespace and kind",
        examples=["api.latency_p99"],
    ),
]


def parse_duration(text: str) -> timedelta:
    """``"5m"``, ``"90s"``, ``"1h30m"``, ``"2d"`` (or a number of seconds) as a timedelta."""
    value = text.strip() if isinstance(text, str) else text
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value))
        if not value or match is None:
            raise ValueError(
                f"duration {text!r} must look like 30s, 5m, 1h30m or 2d (units d, h, m, s)"
            )
        d, h, m, s = match.groups()
        seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds <= 0 or seconds > 366 * 86400:
        raise ValueError(f"duration {text!r} must be more than 0 and at most a year")
    return timedelta(seconds=seconds)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(examples=["5m"], description="A duration such as 30s, 5m, 1h30m or 2d"),
]


class ConfigObject(BaseModel):
    """Base of every config kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str]
    namespace: Namespace
    name: ObjectName
    description: str = Field(default="", max_length=1024, description="What it is for, for people")

    def key(self) -> str:
        """``<namespace>.<kind>.<name>``: the object's key in the config registry."""
        return config_key(self.namespace, self.kind, self.name)

    def document(self) -> dict[str, Any]:
        """The object as a YAML or JSON document: ``kind`` first, top-level fields left at
        their default left out (nested models are kept whole, so a step keeps its action)."""
        doc: dict[str, Any] = {"kind": self.kind}
        for name, value in self.model_dump(mode="json").items():
            field = type(self).model_fields[name]
            if field.is_required() or getattr(self, name) != field.get_default(
                call_default_factory=True
            ):
                doc[name] = value
        return doc


C = TypeVar("C", bound=ConfigObject)

KINDS: dict[str, type[ConfigObject]] = {}
"""Every config kind by name; each kind's module registers itself with :func:`kind`."""


def kind(cls: type[C]) -> type[C]:
    """Class decorator: register a config kind under its ``kind`` name."""
    if cls.kind in KINDS:
        raise ConfigError(f"config kind {cls.kind!r} is registered twice")
    KINDS[cls.kind] = cls
    return cls


def config_key(namespace: str, kind_name: str, name: str) -> str:
    """The registry key of an object."""
    return f"{check_namespace(namespace)}.{kind_name}.{_check_name(name)}"


def split_key(key: str) -> tuple[str, str, str]:
    """``(namespace, kind, name)`` of a registry key; ConfigError when it is not one."""
    parts = key.split(".", 2)
    if len(parts) != 3 or parts[1] not in KINDS:
        raise ConfigError(
            f"registry key {key!r} must be <namespace>.<kind>.<name> with kind one of "
            f"{', '.join(sorted(KINDS))}"
        )
    return parts[0], parts[1], parts[2]


def parse_object(data: Mapping[str, Any], *, namespace: str | None = None) -> ConfigObject:
    """Validate a document (a mapping with ``kind``) into its config object.

    ``namespace`` fills in a document that names none; a document that names another is an
    error. Raises pydantic's ValidationError (field errors) or ConfigError (kind, namespace).
    """
    kind_name = data.get("kind")
    if kind_name not in KINDS:
        raise ConfigError(
            f"kind {kind_name!r} is not a config kind; expected one of {', '.join(sorted(KINDS))}"
        )
    body = {k: v for k, v in data.items() if k != "kind"}
    if namespace is not None:
        declared = body.setdefault("namespace", namespace)
        if declared != namespace:
            raise ConfigError(
                f"namespace: the document says {declared!r} but {namespace!r} was asked for"
            )
    return KINDS[kind_name].model_validate(body)


class ConfigEntry(BaseModel):
    """What the registry stores under an object's key: the object and who wrote it when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(description="Config kind of the object")
    object: dict[str, JsonValue] = Field(description="The object's document, as applied")
    generation: int = Field(ge=1, description="1 for the first version, +1 per change")
    author: str = Field(min_length=1, max_length=256, description="Who wrote it (NATS user)")
    written_at: AwareDatetime = Field(description="When it was written")

    def decode(self) -> ConfigObject:
        """The stored object, re-validated with today's model."""
        return parse_object({"kind": self.kind, **self.object})
