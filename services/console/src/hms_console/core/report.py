"""The monthly compliance report, folded from a namespace's events: what an agency hands its
oversight body. Compliance comes from event counts (runs that met their SLA out of runs
scheduled), never from uptime."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hms_contracts import (
    AlertFiring,
    AlertResolved,
    BusEvent,
    IncidentClosed,
    IncidentOpened,
    IncidentUpdated,
    RunCompleted,
    RunDeadLettered,
    RunFailed,
    RunStarted,
    SlaBreached,
    SloStatusReported,
)
from hms_contracts.config import Alert, Job, Slo

from .plain import badge_colour, pct


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as [first instant, first instant of the next month) in UTC."""
    found = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not found or not 1 <= int(found.group(2)) <= 12:
        raise ValueError(f"--month {month!r}: expected YYYY-MM, e.g. 2026-11")
    year, mon = int(found.group(1)), int(found.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    days = calendar.monthrange(year, mon)[1]
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    assert (end - start).days == days
    return start, end


@dataclass
class RunRow:
    run_id: str
    job_id: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str = "started"
    sla: str = "met"


@dataclass
class IncidentRow:
    incident_id: str
    title: str
    severity: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    mitigating_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: str | None = None

    @property
    def minutes_to_resolve(self) -> float | None:
        if self.closed_at is None:
            return None
        return round((self.closed_at - self.opened_at).total_seconds() / 60, 1)


@dataclass
class ObjectiveRow:
    kind: str  # job, slo or alert
    name: str
    objective: str
    good: float
    total: float
    target: float
    breaches: int

    @property
    def compliance(self) -> float | None:
        return None if self.total == 0 else self.good / self.total

    @property
    def budget_spent(self) -> float | None:
        """Share of the error budget used: misses over the misses the target allows."""
        if self.total == 0:
            return None
        allowed = (1 - self.target) * self.total
        misses = self.total - self.good
        return misses / allowed if allowed > 0 else float(misses > 0)

    @property
    def verdict(self) -> str:
        colour = badge_colour(self.compliance, self.target, breached=False)
        return {"green": "met", "yellow": "met, at risk", "red": "missed", "grey": "no data"}[
            colour
        ]

    def sentence(self) -> str:
        if self.compliance is None:
            return f"{self.name}: no measurements this month ({self.objective})."
        return (
            f"{self.name}: {pct(self.compliance)} ({self.good:g} of {self.total:g}) — "
            f"{self.verdict}; objective: {self.objective}, target {pct(self.target)}."
        )


@dataclass
class Report:
    namespace: str
    month: str
    start: datetime
    end: datetime
    objectives: list[ObjectiveRow] = field(default_factory=list)
    breaches: list[SlaBreached] = field(default_factory=list)
    incidents: list[IncidentRow] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)

    def summary(self) -> list[str]:
        missed = [o for o in self.objectives if o.verdict == "missed"]
        first = (
            f"In {self.month}, {self.namespace} kept {len(self.objectives) - len(missed)} of "
            f"{len(self.objectives)} objectives"
            + (f"; missed: {', '.join(o.name for o in missed)}." if missed else ".")
        )
        return [
            first,
            f"{len(self.breaches)} SLA breach(es), {len(self.incidents)} incident(s), "
            f"{len(self.runs)} scheduled run(s).",
            *(o.sentence() for o in self.objectives),
        ]


def build(
    namespace: str,
    month: str,
    events: Iterable[BusEvent],
    jobs: Iterable[Job],
    alerts: Iterable[Alert],
    target: float,
    slos: Iterable[Slo] = (),
) -> Report:
    """Fold a month of events into the report (events outside the month are ignored).

    An SLO's good and total are those of the evaluator's last SloStatusReported of it in the
    month (counts over the SLO's window, as of then); alerts are objectives only when the
    namespace registers no SLO."""
    start, end = month_bounds(month)
    report = Report(namespace, month, start, end)
    runs: dict[str, RunRow] = {}
    incidents: dict[str, IncidentRow] = {}
    firings: dict[str, int] = {}
    statuses: dict[str, SloStatusReported] = {}
    for e in sorted(events, key=lambda ev: ev.occurred_at):
        if e.namespace != namespace or not start <= e.occurred_at < end:
            continue
        if isinstance(e, RunStarted | RunCompleted | RunFailed | RunDeadLettered):
            row = runs.setdefault(e.run_id, RunRow(e.run_id, e.job_id))
            if isinstance(e, RunStarted):
                row.started_at = row.started_at or e.occurred_at
            else:
                row.ended_at, row.outcome = e.occurred_at, e.event_type or "ended"
                if not isinstance(e, RunCompleted) and not (
                    isinstance(e, RunFailed) and e.will_retry
                ):
                    row.sla = "missed: run failed"
        elif isinstance(e, SlaBreached):
            report.breaches.append(e)
            if e.run_id is not None:
                row = runs.setdefault(e.run_id, RunRow(e.run_id, e.job_id or "?"))
                row.sla = f"missed: {e.reason.replace('_', ' ')}"
        elif isinstance(e, IncidentOpened):
            incidents[e.incident_id] = IncidentRow(
                e.incident_id, e.title, e.severity, e.occurred_at
            )
        elif isinstance(e, IncidentUpdated) and e.incident_id in incidents:
            inc = incidents[e.incident_id]
            if e.status == "acknowledged" and inc.acknowledged_at is None:
                inc.acknowledged_at = e.occurred_at
            if e.status == "mitigating" and inc.mitigating_at is None:
                inc.mitigating_at = e.occurred_at
        elif isinstance(e, IncidentClosed) and e.incident_id in incidents:
            incidents[e.incident_id].closed_at = e.occurred_at
            incidents[e.incident_id].resolution = e.resolution
        elif isinstance(e, AlertFiring):
            firings[e.rule_id] = firings.get(e.rule_id, 0) + 1
        elif isinstance(e, SloStatusReported):
            statuses[e.slo_id] = e  # in time order: the last one wins
        elif isinstance(e, AlertResolved):
            continue
    for job in jobs:
        mine = [r for r in runs.values() if r.job_id == job.name]
        good: float = sum(1 for r in mine if r.sla == "met" and r.outcome == "completed")
        objective = (
            f"every run completes within {job.sla_minutes} min"
            if job.sla_minutes
            else "every run completes"
        )
        report.objectives.append(
            ObjectiveRow(
                "job",
                job.name,
                objective,
                good,
                len(mine),
                target,
                sum(1 for b in report.breaches if b.job_id == job.name),
            )
        )
    slos = list(slos)
    for slo in slos:
        status = statuses.get(slo.name)
        if slo.metric is not None and slo.threshold is not None:
            what = f"{slo.metric} events within {slo.threshold:g}"
        else:
            what = f"{slo.total} events counted good by {slo.good}"
        counts: tuple[float, float] = (0.0, 0.0) if status is None else (status.good, status.total)
        good, total = counts
        report.objectives.append(
            ObjectiveRow(
                "slo",
                slo.name,
                f"{pct(slo.objective)} of {what} over {slo.window}"
                + ("" if status is not None else " (no status reported this month)"),
                good,
                total,
                slo.objective if status is None else status.objective,
                sum(1 for b in report.breaches if b.slo_id == slo.name),
            )
        )
    for alert in alerts if not slos else ():
        breaches = [b for b in report.breaches if b.slo_id == alert.name]
        fired = firings.get(alert.name, 0)
        report.objectives.append(
            ObjectiveRow(
                "alert",
                alert.name,
                f"{alert.metric} {alert.condition.operator} {alert.condition.threshold:g} "
                f"for {alert.window} is an incident ({fired} firing(s) this month)",
                0,
                0,  # measured by the evaluator's SLO counts, when it publishes them
                target,
                len(breaches),
            )
        )
    report.runs = sorted(runs.values(), key=lambda r: r.started_at or r.ended_at or start)
    report.incidents = sorted(incidents.values(), key=lambda i: i.opened_at)
    return report
