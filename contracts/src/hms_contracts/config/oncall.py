"""Who is on call: an on-call schedule's rotations and overrides as shifts in UTC.

Pure functions shared by the incident-engine (which notifies whoever is on call) and the CLI
(``hms-ops oncall show``). The rules, stated once:

- A rotation's hand-offs are its ``start`` plus whole shifts. Daily and weekly shifts are
  counted in wall-clock days of the rotation's zone (so the hand-off stays at 09:00 local and a
  shift across a daylight-saving change lasts 23 or 25 hours); hourly shifts in real hours. A
  hand-off time that does not exist (skipped by a spring-forward) is read with the offset before
  the change (02:30 becomes 03:30 daylight time); one that exists twice is the first.
- Where several rotations are active, the last listed wins (PagerDuty's layers).
- An override puts its user on call for exactly its span: the shift it covers is cut around it,
  never moved, merged or extended; the last listed override wins where two overlap; an override
  always shows as its own entry in the final schedule, even for the person already on call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from .escalation import OncallSchedule, Rotation

MAX_WINDOW = timedelta(days=366)
"""The longest span :func:`final_schedule` computes in one call."""


@dataclass(frozen=True, slots=True)
class Shift:
    """One entry of the final schedule: ``user`` is on call from ``start`` to ``end`` (UTC)."""

    start: datetime
    end: datetime
    user: str
    source: Literal["rotation", "override"]
    rotation: str | None = None
    """The rotation the shift comes from, None for an override."""

    def as_json(self) -> dict[str, str | None]:
        return {
            "start": _z(self.start),
            "end": _z(self.end),
            "user": self.user,
            "source": self.source,
            "rotation": self.rotation,
        }


def _z(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(at: datetime, what: str) -> datetime:
    if at.utcoffset() is None:
        raise ValueError(f"{what} {at!r} must be timezone-aware")
    return at.astimezone(UTC)


class _Turns:
    """The hand-offs of one rotation as UTC instants."""

    def __init__(self, schedule: OncallSchedule, rotation: Rotation) -> None:
        self.rotation = rotation
        self.zone = schedule.zone(rotation)
        self.first = self._utc(rotation.start)
        self.stop = None if rotation.end is None else self._utc(rotation.end)
        unit = {"hourly": 1, "daily": 24, "weekly": 168}[rotation.type]
        self.hours = unit * rotation.shift_length

    def _utc(self, local: datetime) -> datetime:
        # fold=0: a skipped time takes the offset before the change, a repeated one the first
        return local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)

    def handoff(self, k: int) -> datetime:
        """The start of shift ``k`` (k may be any integer)."""
        if self.rotation.type == "hourly":
            return self.first + timedelta(hours=self.hours * k)
        return self._utc(self.rotation.start + timedelta(hours=self.hours * k))

    def active(self, at: datetime) -> bool:
        return self.first <= at and (self.stop is None or at < self.stop)

    def index(self, at: datetime) -> int:
        """The shift that ``at`` falls in."""
        k = math.floor((at - self.first) / timedelta(hours=self.hours))
        while self.handoff(k) > at:
            k -= 1
        while self.handoff(k + 1) <= at:
            k += 1
        return k

    def user(self, k: int) -> str:
        people = self.rotation.participants
        return people[k % len(people)]


def _layers(schedule: OncallSchedule) -> list[_Turns]:
    return [_Turns(schedule, r) for r in schedule.rotations]


def _rotation_at(layers: list[_Turns], at: datetime) -> tuple[_Turns, int] | None:
    for turns in reversed(layers):
        if turns.active(at):
            return turns, turns.index(at)
    return None


def who_is_on_call(schedule: OncallSchedule, at: datetime) -> str | None:
    """Who is on call at ``at`` (an aware datetime): the last override covering it, else the
    last active rotation's person; None when nobody is."""
    at = _aware(at, "at")
    for override in reversed(schedule.overrides):
        if override.start <= at < override.end:
            return override.user
    found = _rotation_at(_layers(schedule), at)
    return None if found is None else found[0].user(found[1])


def _rotation_shifts(layers: list[_Turns], start: datetime, end: datetime) -> list[Shift]:
    """The rotations' shifts in ``[start, end)``, cut only where a layer above starts or
    stops, and at the window's edges."""
    edges = sorted(
        {t.first for t in layers if start < t.first < end}
        | {t.stop for t in layers if t.stop is not None and start < t.stop < end}
    )
    out: list[Shift] = []
    at = start
    while at < end:
        upcoming = [e for e in edges if e > at]
        change = upcoming[0] if upcoming else end
        found = _rotation_at(layers, at)
        if found is None:
            at = change
            continue
        turns, k = found
        stop = min(turns.handoff(k + 1), change)
        out.append(Shift(at, stop, turns.user(k), "rotation", turns.rotation.name))
        at = stop
    return out


def _minus(
    span: tuple[datetime, datetime], taken: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    pieces = [span]
    for a, b in taken:
        pieces = [
            piece
            for s, e in pieces
            for piece in ((s, min(e, a)), (max(s, b), e))
            if piece[0] < piece[1]
        ]
    return pieces


def final_schedule(schedule: OncallSchedule, start: datetime, end: datetime) -> list[Shift]:
    """Every shift between ``start`` and ``end`` (aware datetimes, at most a year apart) in
    time order, with the overrides in place; entries are clipped to the window."""
    start, end = _aware(start, "from"), _aware(end, "to")
    if end <= start:
        raise ValueError(f"to ({_z(end)}) must be after from ({_z(start)})")
    if end - start > MAX_WINDOW:
        raise ValueError(f"from {_z(start)} to {_z(end)} is longer than {MAX_WINDOW.days} days")
    taken: list[tuple[datetime, datetime]] = []
    overrides: list[Shift] = []
    for override in reversed(schedule.overrides):  # the last listed wins
        span = (max(override.start, start), min(override.end, end))
        if span[0] >= span[1]:
            continue
        for s, e in _minus(span, taken):
            overrides.append(Shift(s, e, override.user, "override"))
        taken.append(span)
    shifts = [
        Shift(s, e, shift.user, "rotation", shift.rotation)
        for shift in _rotation_shifts(_layers(schedule), start, end)
        for s, e in _minus((shift.start, shift.end), taken)
    ]
    return sorted([*shifts, *overrides], key=lambda s: s.start)
