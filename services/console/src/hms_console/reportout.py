"""The compliance report as CSV and as PDF (reportlab), plain English first."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .core.plain import pct
from .core.report import Report


def _t(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M UTC")


def _rows(report: Report) -> dict[str, tuple[list[str], list[list[str]]]]:
    objectives = [
        [o.kind, o.name, o.objective, f"{o.good:g}", f"{o.total:g}",
         "" if o.compliance is None else pct(o.compliance), pct(o.target),
         "" if o.budget_spent is None else f"{o.budget_spent * 100:.0f} %",
         str(o.breaches), o.verdict]
        for o in report.objectives
    ]  # fmt: skip
    breaches = [
        [_t(b.occurred_at), b.reason.replace("_", " "), b.job_id or b.slo_id or "", b.run_id or "",
         b.detail]
        for b in report.breaches
    ]  # fmt: skip
    incidents = [
        [i.incident_id, i.title, i.severity, _t(i.opened_at), _t(i.acknowledged_at),
         _t(i.mitigating_at), _t(i.closed_at), i.resolution or "open",
         "" if i.minutes_to_resolve is None else f"{i.minutes_to_resolve:g}"]
        for i in report.incidents
    ]  # fmt: skip
    runs = [
        [r.run_id, r.job_id, _t(r.started_at), _t(r.ended_at), r.outcome, r.sla]
        for r in report.runs
    ]
    return {
        "Objectives": (
            ["kind", "name", "objective", "good", "total", "compliance", "target",
             "budget spent", "breaches", "verdict"],
            objectives,
        ),
        "SLA breaches": (["when", "reason", "job or SLO", "run", "detail"], breaches),
        "Incidents": (
            ["id", "title", "severity", "opened", "acknowledged", "mitigating", "closed",
             "resolution", "minutes to resolve"],
            incidents,
        ),
        "Scheduled runs": (["run", "job", "started", "ended", "outcome", "SLA"], runs),
    }  # fmt: skip


def to_csv(report: Report) -> str:
    """One CSV: the summary lines first, then each section under its own header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "compliance report", report.namespace, report.month])
    for line in report.summary():
        writer.writerow(["summary", line])
    for section, (header, rows) in _rows(report).items():
        writer.writerow([section, *header])
        for row in rows:
            writer.writerow([section, *row])
    return out.getvalue()


def to_pdf(report: Report) -> bytes:
    """A landscape A4 PDF: title, plain-English summary, then the tables."""
    buffer = io.BytesIO()
    styles = getSampleStyleSheet()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        title=f"Compliance report {report.namespace} {report.month}",
        author="hms-ops console",
    )
    story: list[Flowable] = [
        Paragraph(f"Compliance report — {report.namespace}, {report.month}", styles["Title"])
    ]
    for line in report.summary():
        story.append(Paragraph(line, styles["BodyText"]))
    small = styles["BodyText"].clone("small", fontSize=7, leading=8)
    for section, (header, rows) in _rows(report).items():
        story += [Spacer(1, 12), Paragraph(section, styles["Heading2"])]
        if not rows:
            story.append(Paragraph("None this month.", styles["BodyText"]))
            continue
        data = [[Paragraph(c, small) for c in header]]
        data += [[Paragraph(c, small) for c in row] for row in rows[:2000]]
        table = Table(data, repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f2937")),
                    ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
    doc.build(story)
    return buffer.getvalue()
