"""``hms-ops oncall show NS --from --to``: a namespace's on-call schedules as final shifts.

The schedules come from the config registry (kind ``oncall_schedule``); the shifts are computed
with the same function the incident-engine notifies with (:mod:`hms_contracts.config.oncall`),
overrides in place and always shown as their own entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from hms_contracts.config import OncallSchedule
from hms_contracts.config.oncall import final_schedule

from .applycli import StateDir, on_registry
from .configstore import ConfigStore
from .errors import InvalidObject
from .state import StatePaths

#: what ``--to`` defaults to, after ``--from``
DEFAULT_SPAN = timedelta(days=7)


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 date or time; without a UTC offset it is read as UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-03-08 or 2026-03-08T09:00-05:00)",
            param_hint=option,
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _local(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def rows(schedules: list[OncallSchedule], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One entry per schedule: its zone and its final shifts between ``start`` and ``end``."""
    out = []
    for sched in sorted(schedules, key=lambda s: s.name):
        try:
            shifts = final_schedule(sched, start, end)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--from/--to") from None
        out.append(
            {
                "namespace": sched.namespace,
                "schedule": sched.name,
                "timezone": sched.timezone,
                "shifts": [s.as_json() for s in shifts],
            }
        )
    return out


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``oncall`` command group to ``app``."""
    oncall = typer.Typer(help="On-call schedules: who is on call when.")
    app.add_typer(oncall, name="oncall")

    @oncall.command("show")
    def show(
        namespace: Annotated[str, typer.Argument(help="Namespace of the schedules.")],
        start: Annotated[
            str | None,
            typer.Option("--from", help="Start (ISO 8601; UTC without an offset). Default: now."),
        ] = None,
        end: Annotated[
            str | None,
            typer.Option("--to", help="End (ISO 8601; UTC without an offset). Default: +7 days."),
        ] = None,
        schedule: Annotated[
            str | None, typer.Option("--schedule", "-s", help="Only this schedule.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
        state_dir: StateDir = None,
    ) -> None:
        """The final schedule (rotations with overrides in place) of the namespace's on-call
        schedules, in each schedule's zone and in UTC."""
        begin = datetime.now(UTC) if start is None else parse_instant(start, "--from")
        until = begin + DEFAULT_SPAN if end is None else parse_instant(end, "--to")

        async def read(store: ConfigStore) -> list[OncallSchedule]:
            found = await store.objects(namespace, "oncall_schedule")
            picked = [
                s.object
                for s in found
                if isinstance(s.object, OncallSchedule)
                and (schedule is None or s.object.name == schedule)
            ]
            if not picked:
                which = f"schedule {schedule!r}" if schedule else "on-call schedule"
                raise InvalidObject(f"no {which} in namespace {namespace!r}")
            return picked

        found = rows(on_registry(state_paths(state_dir), read), begin, until)
        if as_json:
            print(json.dumps(found, indent=2))
            return
        for entry in found:
            zone = entry["timezone"]
            print(f"{entry['namespace']}.oncall_schedule.{entry['schedule']}  ({zone})")
            if not entry["shifts"]:
                print("  nobody on call")
            for s in entry["shifts"]:
                a, b = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
                source = "override" if s["source"] == "override" else f"rotation {s['rotation']}"
                print(
                    f"  {_local(a, zone)} -> {_local(b, zone)}  {s['user']}  [{source}]  "
                    f"({s['start']} -> {s['end']})"
                )
