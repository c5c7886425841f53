"""The incident engine's config: silences (kind ``silence``) and the typed parameters a playbook
takes from an alert's labels.

A playbook's steps may name parameters as ``{{ name }}`` (a value taken from the alert's labels
and checked against the parameter's schema before any step runs) and secrets as
``{{ secret.NAME }}`` (resolved by the engine, masked on every surface). A value always becomes
part of one argument: steps are argv lists, never a shell, so a label such as
``x; touch PWNED`` can at worst be one (refused) argument, never a command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hms_contracts.fields import LabelName, Text

from .base import ConfigObject, kind
from .rules import Matchers
from .steps import (
    ApproveStep,
    NotifyStep,
    PauseQueueStep,
    ResumeQueueStep,
    RunStep,
    ScaleStep,
    Step,
    TicketStep,
    WebhookStep,
)

PLACEHOLDER = re.compile(r"\{\{\s*(secret\.)?([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
"""``{{ name }}`` (a parameter) or ``{{ secret.NAME }}`` (a secret, by name)."""

MASK = "********"
"""What a secret's value is replaced with on every surface."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$")
_INTEGER = re.compile(r"^[0-9]{1,18}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ParamError(ValueError):
    """A parameter's value is missing or does not fit its schema."""


class Param(BaseModel):
    """One parameter of a playbook, taken from an alert label and validated before use.

    Types: ``name`` (letters, digits, ``. _ - /``, starting with a letter or digit: a
    Kubernetes object, a host, a queue), ``integer``, ``enum`` (one of ``choices``) and
    ``text`` (no control characters, never starting with ``-``). ``pattern`` narrows further.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["name", "integer", "enum", "text"] = Field(
        default="name", description="name, integer, enum or text"
    )
    label: LabelName | None = Field(
        default=None, description="Alert label to read (default: the parameter's own name)"
    )
    default: str | None = Field(
        default=None, max_length=256, description="When the label is absent"
    )
    choices: tuple[str, ...] = Field(default=(), description="Allowed values (type enum)")
    pattern: str | None = Field(
        default=None, max_length=256, description="Regular expression the whole value must match"
    )
    max_length: int = Field(default=253, ge=1, le=1024, description="Longest value accepted")

    @model_validator(mode="after")
    def _choices_fit(self) -> Self:
        if (self.type == "enum") != bool(self.choices):
            raise ValueError("choices: required for type enum, and only for it")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r}: {exc}") from None
        return self

    def check(self, name: str, value: str) -> str:
        """``value`` if it fits; ParamError naming the parameter and the rule otherwise."""
        where = f"parameter {name!r}"
        if len(value) > self.max_length:
            raise ParamError(f"{where}: longer than {self.max_length} characters")
        if _CONTROL.search(value):
            raise ParamError(f"{where}: control characters (a newline?) are not allowed")
        if value.startswith("-"):
            raise ParamError(f"{where}: may not start with '-' (it would read as an option)")
        if self.type == "name" and not _NAME.fullmatch(value):
            raise ParamError(
                f"{where}: {value!r} is not a name (letters, digits, '.', '_', '-', '/')"
            )
        if self.type == "integer" and not _INTEGER.fullmatch(value):
            raise ParamError(f"{where}: {value!r} is not a whole number")
        if self.type == "enum" and value not in self.choices:
            raise ParamError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ParamError(f"{where}: {value!r} does not match {self.pattern!r}")
        return value


Params = dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], Param]


def resolve_params(params: Mapping[str, Param], labels: Mapping[str, str]) -> dict[str, str]:
    """Every parameter's value from ``labels``, each checked; ParamError on the first misfit."""
    values: dict[str, str] = {}
    for name, param in params.items():
        raw = labels.get(param.label or name, param.default)
        if raw is None:
            raise ParamError(f"parameter {name!r}: the alert has no label {param.label or name!r}")
        values[name] = param.check(name, raw)
    return values


def placeholders(text: str) -> tuple[set[str], set[str]]:
    """The parameter names and the secret names ``text`` refers to."""
    params: set[str] = set()
    secrets: set[str] = set()
    for m in PLACEHOLDER.finditer(text):
        (secrets if m.group(1) else params).add(m.group(2))
    return params, secrets


def render(text: str, values: Mapping[str, str], secrets: Mapping[str, str]) -> tuple[str, str]:
    """``text`` with its placeholders filled in: (the real text, the text with secrets masked).
    A name with no value raises ParamError."""

    def fill(masked: bool) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(2)
            if m.group(1):
                if name not in secrets:
                    raise ParamError(f"secret {name!r} is not configured in the incident engine")
                return MASK if masked else secrets[name]
            if name not in values:
                raise ParamError(f"parameter {name!r} is not declared by the playbook")
            return values[name]

        return PLACEHOLDER.sub(one, text)

    return fill(False), fill(True)


def render_step(
    step: Step, values: Mapping[str, str], secrets: Mapping[str, str]
) -> tuple[str, ...]:
    """A step as it will run and be recorded: its argv (or the built-in verb and its
    arguments) with parameters filled in and secrets masked. ParamError when a name is
    missing. ``--dry-run`` prints this."""
    if isinstance(step, RunStep):
        return tuple(render(a, values, secrets)[1] for a in step.argv)
    if isinstance(step, NotifyStep):
        return ("notify", step.target, render(step.message, values, secrets)[1])
    if isinstance(step, TicketStep):
        return ("ticket", render(step.summary, values, secrets)[1])
    if isinstance(step, ScaleStep):
        return ("scale", step.pool, str(step.replicas))
    if isinstance(step, PauseQueueStep | ResumeQueueStep):
        return (step.action, step.queue)
    if isinstance(step, ApproveStep):
        return ("approval", step.prompt)
    if isinstance(step, WebhookStep):
        return ("webhook", step.url)
    return ("python", step.function)


def mask(text: str, secrets: Mapping[str, str] | list[str] | tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by the mask."""
    values = secrets.values() if isinstance(secrets, Mapping) else secrets
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


# --- silences ------------------------------------------------------------------------------


@kind
class Silence(ConfigObject):
    """Mutes new incidents from matching alerts in one namespace between ``starts_at`` and
    ``ends_at`` (a maintenance window, or a known problem); every field is audited."""

    kind: ClassVar[str] = "silence"

    matchers: Matchers = Field(
        min_length=1, description='All must match, e.g. service="benefits_api"'
    )
    starts_at: AwareDatetime | None = Field(default=None, description="From (default: at once)")
    ends_at: AwareDatetime = Field(description="Expiry: the silence ends then")
    author: Text = Field(description="Who created it")
    reason: Text = Field(description="Why, e.g. a maintenance window or a ticket")

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def active(self, now: datetime) -> bool:
        """Whether the silence mutes at ``now``."""
        return (self.starts_at is None or self.starts_at <= now) and now < self.ends_at

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        """Whether an alert with ``labels`` is muted at ``now``."""
        return self.active(now) and all(m.matches(labels) for m in self.matchers)
