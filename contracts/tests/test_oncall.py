"""On-call schedules across time zones and daylight-saving changes: properties over ten years of
transitions, and the overrides' promise (exactly their span, never merged, always shown)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hms_contracts.config import KINDS, OncallSchedule, parse_object
from hms_contracts.config.oncall import Shift, final_schedule, who_is_on_call
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

ZONES = ("America/Toronto", "America/New_York", "America/Vancouver", "Europe/London")
PEOPLE = ("ana@agency.gov", "bo@agency.gov", "cy@agency.gov", "di@agency.gov")
OVERRIDERS = ("ed@agency.gov", "fi@agency.gov", "ana@agency.gov")
TEN_YEARS = (datetime(2026, 1, 1), datetime(2035, 12, 31))
UNIT = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}


def schedule(
    zone: str,
    rtype: str,
    length: int,
    start: datetime,
    people: int,
    overrides: list[dict[str, Any]],
) -> OncallSchedule:
    obj = parse_object(
        {
            "kind": "oncall_schedule",
            "namespace": "usds_unemployment",
            "name": "primary",
            "timezone": zone,
            "rotations": [
                {
                    "name": "main",
                    "type": rtype,
                    "shift_length": length,
                    "start": start.isoformat(),
                    "participants": list(PEOPLE[:people]),
                }
            ],
            "overrides": overrides,
        }
    )
    assert isinstance(obj, OncallSchedule)
    return obj


def local(at: datetime, zone: str) -> datetime:
    return at.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def exists(wall: datetime, zone: str) -> bool:
    """Whether a wall-clock time happens in ``zone`` (it is not skipped by a spring-forward)."""
    z = ZoneInfo(zone)
    return wall.replace(tzinfo=z).astimezone(UTC).astimezone(z).replace(tzinfo=None) == wall


local_starts = st.datetimes(min_value=TEN_YEARS[0], max_value=TEN_YEARS[1]).map(
    lambda d: d.replace(minute=d.minute // 15 * 15, second=0, microsecond=0)
)
# hand-offs at 01:xx and 02:xx meet the repeated and the skipped hours; favour them
handoff_hours = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 23))


@st.composite
def cases(draw: st.DrawFn) -> tuple[OncallSchedule, OncallSchedule, datetime, datetime]:
    zone = draw(st.sampled_from(ZONES))
    rtype = draw(st.sampled_from(["hourly", "daily", "weekly"]))
    length = draw(st.integers(1, 12 if rtype == "hourly" else 3))
    start = draw(local_starts).replace(hour=draw(handoff_hours))
    people = draw(st.integers(1, 4))
    window_start = start.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) + timedelta(
        hours=draw(st.integers(-72, 24 * 400))
    )
    window_end = window_start + timedelta(hours=draw(st.integers(1, 24 * 45)))
    overrides = []
    for _ in range(draw(st.integers(0, 4))):
        o_start = window_start + timedelta(minutes=draw(st.integers(-600, 60 * 24 * 45)))
        o_end = o_start + timedelta(minutes=draw(st.integers(1, 60 * 24 * 10)))
        overrides.append(
            {"user": draw(st.sampled_from(OVERRIDERS)), "start": o_start, "end": o_end}
        )
    base = schedule(zone, rtype, length, start, people, [])
    with_overrides = schedule(zone, rtype, length, start, people, overrides)
    return base, with_overrides, window_start, window_end


def covered(shifts: list[Shift], at: datetime) -> Shift | None:
    return next((s for s in shifts if s.start <= at < s.end), None)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_the_final_schedule_tiles_the_window_without_gap_or_overlap(
    case: tuple[OncallSchedule, OncallSchedule, datetime, datetime],
) -> None:
    _, sched, start, end = case
    rotation = sched.rotations[0]
    first = rotation.start.replace(tzinfo=sched.zone(rotation)).astimezone(UTC)
    shifts = final_schedule(sched, start, end)
    if end <= first and not sched.overrides:
        assert shifts == []
        return
    if first < end:  # from its first hand-off on, someone is always on call
        assert shifts[-1].end == end
    if first <= start:
        assert shifts[0].start == start
    for a, b in itertools.pairwise(shifts):
        assert start <= a.start < a.end <= b.start < b.end <= end
        if a.end != b.start:  # a gap only before the rotation starts
            assert b.start <= first


@settings(max_examples=150, deadline=None)
@given(cases(), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_who_is_on_call_agrees_with_the_final_schedule(
    case: tuple[OncallSchedule, OncallSchedule, datetime, datetime], fractions: list[float]
) -> None:
    _, sched, start, end = case
    shifts = final_schedule(sched, start, end)
    instants = [start + (end - start) * f for f in fractions if start + (end - start) * f < end]
    instants += [s.start for s in shifts] + [s.end - timedelta(microseconds=1) for s in shifts]
    for at in instants:
        entry = covered(shifts, at)
        assert who_is_on_call(sched, at) == (None if entry is None else entry.user), at


@settings(max_examples=150, deadline=None)
@given(cases())
def test_hand_offs_keep_their_local_time_and_turns_across_daylight_saving(
    case: tuple[OncallSchedule, OncallSchedule, datetime, datetime],
) -> None:
    sched, _, start, end = case
    rotation = sched.rotations[0]
    zone = rotation.timezone or sched.timezone
    shifts = final_schedule(sched, start, end)
    whole = [s for s in shifts if s.start != start and s.end != end]
    for shift in whole:
        length = (shift.end - shift.start) / UNIT[rotation.type]
        if rotation.type == "hourly":
            assert shift.end - shift.start == timedelta(hours=rotation.shift_length)
        else:
            # a wall-clock day across a daylight-saving change is 23 or 25 hours long
            drift = shift.end - shift.start - UNIT[rotation.type] * rotation.shift_length
            assert abs(drift) <= timedelta(hours=1), (shift, length)
            wall = local(shift.start, zone)
            if rotation.type == "weekly":
                assert wall.weekday() == rotation.start.weekday()
            handoff = wall.replace(hour=rotation.start.hour, minute=rotation.start.minute)
            if exists(handoff, zone):
                assert wall == handoff
            else:  # skipped by the spring-forward: the same instant one hour later on the clock
                assert wall == handoff + timedelta(hours=1)
    for a, b in itertools.pairwise(whole):
        step = PEOPLE.index(b.user) - PEOPLE.index(a.user)
        assert step % len(rotation.participants) == 1 % len(rotation.participants)


@settings(max_examples=200, deadline=None)
@given(cases(), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_overrides_replace_exactly_their_span_and_never_extend_a_shift(
    case: tuple[OncallSchedule, OncallSchedule, datetime, datetime], fractions: list[float]
) -> None:
    base, sched, start, end = case
    plain = final_schedule(base, start, end)
    final = final_schedule(sched, start, end)
    # every rotation entry lies inside one of the plain schedule's shifts, same person
    for entry in final:
        if entry.source == "rotation":
            host = covered(plain, entry.start)
            assert host is not None
            assert host.user == entry.user
            assert entry.end <= host.end
            assert host.rotation == entry.rotation
    # an instant is the last covering override's, else exactly what it was without overrides
    instants = [start + (end - start) * f for f in fractions if start + (end - start) * f < end]
    instants += [o.start for o in sched.overrides] + [o.end for o in sched.overrides]
    for at in (t for t in instants if start <= t < end):
        over = [o for o in sched.overrides if o.start <= at < o.end]
        found = covered(final, at)
        if over:
            assert found is not None
            assert found.source == "override"
            assert found.user == over[-1].user
        else:
            before = covered(plain, at)
            assert (found and found.user) == (before and before.user)
    # every part of an override that no later one covers shows, as its own entry, exactly
    for i, o in enumerate(sched.overrides):
        span = (max(o.start, start), min(o.end, end))
        rest = [span] if span[0] < span[1] else []
        for x in sched.overrides[i + 1 :]:  # what later overrides leave of it
            rest = [
                p
                for a, b in rest
                for p in ((a, min(b, x.start)), (max(a, x.end), b))
                if p[0] < p[1]
            ]
        for a, b in rest:
            assert any(
                e.user == o.user and e.source == "override" and e.start == a and e.end == b
                for e in final
            ), (o, a, b)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("handoff", ["01:30", "02:30", "09:00"])
def test_a_daily_rotation_hands_off_every_day_of_ten_years_at_its_local_time(
    zone: str, handoff: str
) -> None:
    hour, minute = map(int, handoff.split(":"))
    start = datetime(2026, 1, 1, hour, minute)
    sched = schedule(zone, "daily", 1, start, 3, [])
    first = start.replace(tzinfo=ZoneInfo(zone))
    shifts: list[Shift] = []
    at = first.astimezone(UTC)
    while at < datetime(2036, 1, 1, tzinfo=UTC):  # a year per call: the window's limit
        shifts += final_schedule(sched, at, at + timedelta(days=365))
        at += timedelta(days=365)
    lengths = {s.end - s.start for s in shifts}
    assert lengths <= {timedelta(hours=h) for h in (23, 24, 25)}
    assert timedelta(hours=23) in lengths
    assert timedelta(hours=25) in lengths
    starts = [local(s.start, zone) for s in shifts]
    days = {s.date() for s in starts}
    assert len(days) == len(starts)  # one hand-off a day, never two, never none
    assert (starts[-1].date() - starts[0].date()).days == len(starts) - 1
    for wall in starts:
        intended = wall.replace(hour=hour, minute=minute)
        assert wall == (intended if exists(intended, zone) else intended + timedelta(hours=1))


def test_an_override_for_the_person_on_call_still_shows_and_merges_nothing() -> None:
    start = datetime(2026, 3, 7, 9, 0)
    o = {"user": "ana@agency.gov", "start": "2026-03-07T16:00Z", "end": "2026-03-07T18:00Z"}
    sched = schedule("America/Toronto", "daily", 1, start, 2, [o])
    shifts = final_schedule(
        sched, datetime(2026, 3, 7, 14, tzinfo=UTC), datetime(2026, 3, 9, 14, tzinfo=UTC)
    )
    assert [(s.user, s.source, s.start.hour, s.end.hour) for s in shifts] == [
        ("ana@agency.gov", "rotation", 14, 16),
        ("ana@agency.gov", "override", 16, 18),
        ("ana@agency.gov", "rotation", 18, 13),  # 09:00 EDT on the 8th: the clocks went forward
        ("bo@agency.gov", "rotation", 13, 13),
        ("ana@agency.gov", "rotation", 13, 14),
    ]


def test_a_later_rotation_takes_over_where_it_is_active() -> None:
    obj = parse_object(
        {
            "kind": "oncall_schedule",
            "namespace": "ns",
            "name": "s",
            "timezone": "Europe/London",
            "rotations": [
                {"name": "base", "type": "weekly", "start": "2026-01-05T09:00",
                 "participants": ["ana@agency.gov"]},
                {"name": "holiday", "type": "daily", "start": "2026-12-24T00:00",
                 "end": "2026-12-27T00:00", "participants": ["bo@agency.gov"]},
            ],
        }
    )  # fmt: skip
    assert isinstance(obj, OncallSchedule)
    assert who_is_on_call(obj, datetime(2026, 12, 25, 12, tzinfo=UTC)) == "bo@agency.gov"
    assert who_is_on_call(obj, datetime(2026, 12, 27, 12, tzinfo=UTC)) == "ana@agency.gov"
    assert who_is_on_call(obj, datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"rotations": []}, "at least 1"),
        ({"overrides": [{"user": "a@b.gov", "start": "2026-01-02T00:00Z",
                         "end": "2026-01-01T00:00Z"}]}, "not after start"),
        ({"overrides": [{"user": "a@b.gov\r\nBcc: x@y.z", "start": "2026-01-01T00:00Z",
                         "end": "2026-01-02T00:00Z"}]}, "bare address"),
        ({"rotations": [{"name": "r", "start": "2026-01-01T09:00-05:00",
                         "participants": ["a@b.gov"]}]}, "UTC offset"),
    ],
)  # fmt: skip
def test_a_bad_schedule_is_refused_naming_the_field(change: dict[str, Any], error: str) -> None:
    doc = {
        "kind": "oncall_schedule",
        "namespace": "ns",
        "name": "s",
        "rotations": [{"name": "r", "start": "2026-01-01T09:00", "participants": ["a@b.gov"]}],
        **change,
    }
    with pytest.raises(ValidationError, match=error):
        parse_object(doc)


def test_both_kinds_are_registered() -> None:
    assert {"oncall_schedule", "escalation_policy"} <= set(KINDS)
