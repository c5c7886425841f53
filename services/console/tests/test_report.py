"""The monthly compliance report: from event counts, as JSON, CSV and a PDF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hms_console.core.report import build, month_bounds
from hms_console.reportout import to_csv, to_pdf
from hms_console.testing import Running
from hms_contracts import (
    BusEvent,
    IncidentClosed,
    IncidentOpened,
    IncidentUpdated,
    RunCompleted,
    RunFailed,
    RunStarted,
    SlaBreached,
)
from hms_contracts.config import Job
from nats.js import JetStreamContext

NS = "usds_unemployment"


def month_of_events(now: datetime) -> list[BusEvent]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[BusEvent] = []
    for n, ok in ((0, True), (1, True), (2, False)):
        at = day - timedelta(days=n) if day.day > 3 else day + timedelta(hours=n)
        run_id = f"ssa_re_score@{at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        common = {"namespace": NS, "job_id": "ssa_re_score", "run_id": run_id,
                  "queue": "ssa_q"}  # fmt: skip
        events.append(RunStarted.create(occurred_at=at, worker_id="w1", attempt=1, **common))
        if ok:
            events.append(
                RunCompleted.create(
                    occurred_at=at + timedelta(minutes=30), items=1, duration_s=1800, **common
                )
            )
        else:
            events.append(
                RunFailed.create(
                    occurred_at=at + timedelta(minutes=5), error="boom", attempt=3,
                    will_retry=False, **common,
                )
            )  # fmt: skip
            events.append(
                SlaBreached.create(
                    namespace=NS, occurred_at=at + timedelta(minutes=6), reason="run_failed",
                    job_id="ssa_re_score", run_id=run_id, deadline=at + timedelta(hours=5),
                    detail="the nightly re-score failed",
                )
            )  # fmt: skip
    opened = now - timedelta(minutes=30)
    events += [
        IncidentOpened.create(
            namespace=NS, occurred_at=opened, incident_id="inc-1", title="re-score failed",
            severity="critical", cause="sla_breach",
        ),
        IncidentUpdated.create(
            namespace=NS, occurred_at=opened + timedelta(minutes=4), incident_id="inc-1",
            revision=1, status="acknowledged", severity="critical", actor="token:oncall",
        ),
        IncidentClosed.create(
            namespace=NS, occurred_at=opened + timedelta(minutes=20), incident_id="inc-1",
            resolution="resolved", closed_by="token:oncall", opened_at=opened,
        ),
    ]  # fmt: skip
    return events


def job() -> Job:
    return Job.model_validate(
        {"namespace": NS, "id": "ssa_re_score", "schedule": "0 0 * * *", "queue": "ssa_q",
         "sla_minutes": 300, "command": ["true"]}
    )  # fmt: skip


def test_months_are_utc_and_checked() -> None:
    assert month_bounds("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("2026-13")


def test_compliance_comes_from_event_counts() -> None:
    now = datetime.now(UTC)
    report = build(NS, now.strftime("%Y-%m"), month_of_events(now), [job()], [], 0.99)
    [objective] = report.objectives
    assert (objective.good, objective.total) == (2, 3)
    assert objective.verdict == "missed"
    assert objective.breaches == 1
    assert [r.sla for r in report.runs].count("missed: run failed") == 1
    [incident] = report.incidents
    assert incident.minutes_to_resolve == 20.0
    assert report.summary()[0].endswith("missed: ssa_re_score.")
    csv = to_csv(report)
    assert "Scheduled runs,run,job" in csv
    assert to_pdf(report).startswith(b"%PDF")


async def test_the_report_over_the_api(console: Running, js: JetStreamContext) -> None:
    now = datetime.now(UTC)
    for event in month_of_events(now):
        await js.publish(
            event.subject(), event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": event.event_id},
        )  # fmt: skip
    month = now.strftime("%Y-%m")
    path = f"/api/v1/namespaces/{console.ns}/reports/compliance"
    async with console.client("viewer") as http:
        body = (await http.get(path, params={"month": month})).json()
        assert (body["runs"], body["incidents"], body["breaches"]) == (3, 1, 1)
        pdf = await http.get(path, params={"month": month, "format": "pdf"})
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")
        bad = await http.get(path, params={"month": "2026-1"})
        assert bad.status_code == 422
