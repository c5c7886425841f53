"""SLO badges, the SLO route and the dashboard come from the evaluator's SloStatusReported of
each registered SLO; alert objectives only where no SLO is registered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from hms_console.testing import Running
from hms_contracts import SloStatusReported
from hms_testing import wait_until
from nats.js import JetStreamContext


def status(ns: str, colour: str, good: float, total: float, left: float) -> SloStatusReported:
    return SloStatusReported.create(
        namespace=ns,
        occurred_at=datetime.now(UTC),
        slo_id="filings_within_2s",
        objective=0.99,
        window_s=30 * 86400.0,
        good=good,
        total=total,
        compliance=good / total,
        budget_left=left,
        status=colour,
        summary=f"{good / total:.2%} within 2 s",
    )


async def test_the_slo_badge_and_route_follow_the_latest_status_of_each_registered_slo(
    console: Running, js: JetStreamContext
) -> None:
    ns = console.ns
    async with console.client("author") as http:
        r = await http.put(
            f"/api/v1/namespaces/{ns}/config/alert/latency_high",
            json={"metric": "api.latency_p99", "condition": "> 1000", "window": "5m"},
        )
        assert r.status_code == 200, r.text
        r = await http.put(
            f"/api/v1/namespaces/{ns}/config/slo/filings_within_2s",
            json={"objective": 99, "window": "30d", "metric": "filings.duration_seconds",
                  "threshold": 2},
        )  # fmt: skip
        assert r.status_code == 200, r.text
    async with console.client("viewer") as http:

        async def grey() -> list[dict[str, Any]] | None:
            rows = (await http.get(f"/api/v1/namespaces/{ns}/slos")).json()
            return rows if [r["name"] for r in rows] == ["filings_within_2s"] else None

        [row] = await wait_until(grey, timeout=20, message="the registered SLO, alone")
        assert row["colour"] == "grey"  # registered, not reported yet; the alert is not an SLO
        assert "No report yet" in row["sentence"]

        for event in (
            status(ns, "green", 9_930, 10_000, 0.3),
            status(ns, "yellow", 9_910, 10_000, 0.1),
        ):
            await js.publish(event.subject(), event.model_dump_json().encode())

        async def yellow() -> dict[str, Any] | None:
            rows = (await http.get(f"/api/v1/namespaces/{ns}/slos")).json()
            return rows[0] if rows and rows[0]["colour"] == "yellow" else None

        row = await wait_until(yellow, timeout=20, message="the latest status")
        assert row["good"] == 9_910
        assert row["total"] == 10_000
        assert row["budget_left"] == 0.1
        assert row["source"] == "slo status"
        assert row["sentence"].startswith(
            "99.1 % of filings.duration_seconds events within 2 s over the last 30d — meets the "
            "target, budget running low (target 99 %); 10 % of the error budget left"
        )
        page = await http.get(f"/dashboard/{ns}")
        assert "badge-yellow" in page.text
        assert "99.1 %" in page.text
    async with console.client() as http:  # public
        r = await http.get(f"/badge/{ns}/filings_within_2s.svg")
        assert r.status_code == 200
        ElementTree.fromstring(r.text)
        assert "99.1 %" in r.text
        missing = await http.get(f"/badge/{ns}/latency_high.svg")
        assert missing.status_code == 404  # an alert is not an SLO once SLOs are registered


async def test_the_compliance_report_counts_the_slo_status_good_and_total(
    console: Running, js: JetStreamContext
) -> None:
    ns = console.ns
    async with console.client("author") as http:
        r = await http.put(
            f"/api/v1/namespaces/{ns}/config/slo/filings_within_2s",
            json={"objective": "99%", "good": "filings.ok_total", "total": "filings.all_total"},
        )
        assert r.status_code == 200, r.text
    event = status(ns, "red", 9_800, 10_000, -1.0)
    await js.publish(event.subject(), event.model_dump_json().encode())
    month = datetime.now(UTC).strftime("%Y-%m")
    async with console.client("viewer") as http:

        async def report() -> dict[str, Any] | None:
            r = await http.get(f"/api/v1/namespaces/{ns}/reports/compliance?month={month}")
            slos = [o for o in r.json()["objectives"] if o["kind"] == "slo"]
            return slos[0] if slos and slos[0]["total"] == 10_000 else None

        row = await wait_until(report, timeout=20, message="the SLO's counts in the report")
        assert row["good"] == 9_800
        assert row["compliance"] == 0.98
        assert row["verdict"] == "missed"
        assert abs(row["budget_spent"] - 2.0) < 1e-9
