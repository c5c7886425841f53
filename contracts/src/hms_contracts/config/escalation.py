"""The ``oncall_schedule`` and ``escalation_policy`` kinds: who is on call, and who is told when.

An on-call schedule is a stack of rotations (later ones take precedence where they are active,
as PagerDuty's layers do) and a list of overrides. A rotation hands off at the wall-clock time
of its ``start`` in its time zone: a daily rotation starting ``2026-01-05T09:00`` in
``America/Toronto`` hands off at 09:00 Toronto time every day, so across a daylight-saving
change a shift lasts 23 or 25 hours; an hourly rotation hands off every ``shift_length`` hours
of real time. An override puts one person on call for exactly its span, whoever the rotations
say; the last listed override wins where two overlap. See :mod:`hms_contracts.config.oncall`
for the computation.

An escalation policy is a list of levels. Level 1 is notified when the incident opens; each
level's ``delay`` later, if nobody acknowledged, the next level is; after the last level the
policy starts again from level 1 ``repeat`` more times. An acknowledged incident that is not
closed within ``ack_timeout`` is notified again from level 1 (PagerDuty's acknowledgement
timeout).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from .base import ConfigObject, Duration, ObjectName, kind, parse_duration
from .jobs import check_timezone

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def check_email(value: str) -> str:
    """``value`` if it is a bare e-mail address (no display name, no CR, LF or spaces)."""
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError(
            f"e-mail address {value!r} must be a bare address such as oncall@agency.gov "
            "(no name, spaces or line breaks)"
        )
    return value


EmailAddress = Annotated[
    str,
    AfterValidator(check_email),
    Field(examples=["oncall@agency.gov"], description="A bare e-mail address"),
]

RotationType = Literal["hourly", "daily", "weekly"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _local(value: Any) -> Any:
    """A wall-clock time: an offset given with it is refused (the rotation's zone decides)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        raise ValueError(
            f"{value.isoformat()} has a UTC offset; write the local wall-clock time of the "
            "hand-off (e.g. 2026-01-05T09:00), read in the rotation's time zone"
        )
    if isinstance(value, str) and re.search(r"(Z|[+-]\d\d:?\d\d)$", value.strip()):
        raise ValueError(
            f"{value!r} has a UTC offset; write the local wall-clock time of the hand-off "
            "(e.g. 2026-01-05T09:00), read in the rotation's time zone"
        )
    return value


LocalTime = Annotated[datetime, BeforeValidator(_local)]


class Rotation(_Part):
    """People taking turns; each turn (shift) hands off at ``start``'s wall-clock time."""

    name: ObjectName = Field(description="Name of the rotation, unique in its schedule")
    type: RotationType = Field(
        default="weekly", description="Unit of a shift: hourly, daily or weekly"
    )
    shift_length: int = Field(default=1, ge=1, le=1000, description="Units per shift")
    start: LocalTime = Field(
        description="Local wall-clock time of the first hand-off; its time of day (and weekday "
        "for weekly rotations) is the hand-off time, e.g. 2026-01-05T09:00"
    )
    end: LocalTime | None = Field(
        default=None, description="Local wall-clock time the rotation stops; default: never"
    )
    timezone: Annotated[str, AfterValidator(check_timezone)] | None = Field(
        default=None, description="IANA time zone of the hand-offs; default: the schedule's"
    )
    participants: tuple[EmailAddress, ...] = Field(
        min_length=1, max_length=200, description="Who takes turns, in order"
    )

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"rotation {self.name}: end {self.end} is not after start")
        return self


class Override(_Part):
    """One person on call for exactly ``start`` to ``end``, replacing the rotations there."""

    user: EmailAddress = Field(description="Who is on call during the override")
    start: AwareDatetime = Field(description="When it begins (with a UTC offset)")
    end: AwareDatetime = Field(description="When it ends (with a UTC offset), exclusive")
    reason: str = Field(default="", max_length=1024, description="Why, for the timeline")

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end <= self.start:
            raise ValueError(
                f"override for {self.user}: end {self.end.isoformat()} is not after start "
                f"{self.start.isoformat()}"
            )
        if self.end - self.start > timedelta(days=366):
            raise ValueError(f"override for {self.user}: longer than a year")
        return self


@kind
class OncallSchedule(ConfigObject):
    """Who is on call when: rotations in a time zone, and overrides."""

    kind: ClassVar[str] = "oncall_schedule"

    timezone: Annotated[str, AfterValidator(check_timezone)] = Field(
        default="UTC", description="IANA time zone of the rotations, e.g. America/Toronto"
    )
    rotations: tuple[Rotation, ...] = Field(
        min_length=1,
        max_length=50,
        description="Rotations, lowest precedence first: where two are active, the later wins",
    )
    overrides: tuple[Override, ...] = Field(
        default=(), max_length=1000, description="Overrides; the later wins where two overlap"
    )

    @model_validator(mode="after")
    def _unique_rotations(self) -> Self:
        names = [r.name for r in self.rotations]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"rotations: name(s) {', '.join(dupes)} used twice")
        return self

    def zone(self, rotation: Rotation) -> ZoneInfo:
        """The time zone ``rotation`` hands off in."""
        return ZoneInfo(rotation.timezone or self.timezone)


def _target(value: Any) -> Any:
    """``"ops@agency.gov"`` and ``"schedule:primary"`` as shorthands for the mapping form."""
    if isinstance(value, str):
        if value.startswith("schedule:"):
            return {"schedule": value.removeprefix("schedule:")}
        return {"email": value}
    return value


class _TargetModel(_Part):
    email: EmailAddress | None = Field(default=None, description="Notify this address")
    schedule: ObjectName | None = Field(
        default=None, description="Notify whoever is on call in this schedule at that moment"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.email is None) == (self.schedule is None):
            raise ValueError("a target names exactly one of email or schedule")
        return self

    def __str__(self) -> str:
        return self.email if self.email is not None else f"schedule:{self.schedule}"


Target = Annotated[_TargetModel, BeforeValidator(_target)]


class Level(_Part):
    """Who is notified at this level, and how long they have before the next level is."""

    targets: tuple[Target, ...] = Field(
        min_length=1,
        max_length=50,
        description="E-mail addresses or schedules, e.g. oncall@agency.gov or schedule:primary",
    )
    delay: Duration = Field(
        default="15m", description="Time to acknowledge before the next level is notified"
    )

    @property
    def delay_td(self) -> timedelta:
        return parse_duration(self.delay)


@kind
class EscalationPolicy(ConfigObject):
    """Ordered levels of people to notify until someone acknowledges."""

    kind: ClassVar[str] = "escalation_policy"

    levels: tuple[Level, ...] = Field(
        min_length=1, max_length=20, description="Levels, notified in order"
    )
    repeat: int = Field(
        default=0, ge=0, le=9, description="Times the levels start again after the last one"
    )
    ack_timeout: Duration | None = Field(
        default="30m",
        description="An acknowledged incident still open this long later is notified again "
        "from level 1; null: never",
    )

    @property
    def ack_timeout_td(self) -> timedelta | None:
        return None if self.ack_timeout is None else parse_duration(self.ack_timeout)
