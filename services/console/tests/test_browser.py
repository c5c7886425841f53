"""The dashboard in a real browser: Playwright driving Debian's chromium (never a downloaded
one). The registered metric's graph is drawn, a firing alert's incident appears without a
reload, a viewer sees no action buttons and is refused when calling them anyway, login and
CSRF hold. Screenshots go to ``artifacts/console/`` (gitignored) for the CI's artifacts."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_console.testing import Running
from hms_contracts import AlertFiring, IncidentOpened
from nats.js import JetStreamContext

CHROMIUM = os.environ.get("HMS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = (
    Path(os.environ.get("HMS_ARTIFACTS_DIR", Path(__file__).resolve().parents[3] / "artifacts"))
    / "console"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
        reason=f"no chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        found = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield found
        finally:
            await found.close()


async def login(browser: Any, console: Running, who: str) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{console.url}/dashboard/{console.ns}")
    assert "/login" in page.url  # not signed in: sent to the login form
    await page.fill("#token", console.tokens[who])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{console.url}/dashboard/{console.ns}")
    return page


async def seed(console: Running) -> None:
    async with console.client("author") as http:
        for kind, name, body in (
            ("metric", "api.latency_p99", {"unit": "ms", "source": "https://benefits.gov/api"}),
            ("alert", "sla_latency_breach", {"metric": "api.latency_p99", "condition": "> 1000"}),
        ):
            r = await http.put(f"/api/v1/namespaces/{console.ns}/config/{kind}/{name}", json=body)
            assert r.status_code == 200, r.text
        now = datetime.now(UTC).timestamp()
        samples = [
            {
                "name": "api.latency_p99",
                "value": 300.0 + (i % 7) * 90,
                "unit": "ms",
                "observed_at": datetime.fromtimestamp(now - 1800 + i * 18, UTC).isoformat(),
            }
            for i in range(100)
        ]
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics",
            json={"source": "portal", "samples": samples},
        )
        assert r.status_code == 202


def firing(ns: str) -> tuple[AlertFiring, IncidentOpened]:
    now = datetime.now(UTC)
    alert = AlertFiring.create(
        namespace=ns,
        occurred_at=now,
        rule_id="sla_latency_breach",
        metric="api.latency_p99",
        fingerprint="a1b2c3d4e5f60718",
        value=1450.0,
        operator=">",
        threshold=1000.0,
        severity="critical",
        summary="p99 latency 1450 ms > 1000 ms for 5m",
        started_at=now,
    )
    incident = IncidentOpened.create(
        namespace=ns,
        occurred_at=now,
        incident_id="inc-live-1",
        title="p99 latency 1450 ms > 1000 ms",
        severity="critical",
        cause="alert",
        cause_event_id=alert.event_id,
        fingerprint=alert.fingerprint,
        playbook="rollback",
    )
    return alert, incident


async def test_the_dashboard_live_in_a_browser(
    console: Running, browser: Any, js: JetStreamContext
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await seed(console)
    page = await login(browser, console, "responder")
    # the registered metric's graph, drawn from its samples
    graph = page.locator('figure.graph[data-metric="api.latency_p99"] svg')
    await graph.wait_for()
    assert int(await graph.get_attribute("data-points") or 0) > 0
    assert await page.locator("figure.graph polyline.p99").count() == 1
    assert await page.locator(".badge").first.inner_text() != ""
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # a firing alert's incident appears without a reload
    await page.evaluate("window.__stay = 1")
    for event in firing(console.ns):
        await js.publish(
            event.subject(),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": event.event_id},
        )
    row = page.locator('#incidents tr[data-id="inc-live-1"]')
    await row.wait_for(timeout=20_000)
    assert await page.evaluate("window.__stay") == 1, "the page reloaded"
    assert "OPEN" in await row.locator(".status").inner_text()
    assert await row.locator("button.action").count() == 2  # a responder may act
    await page.screenshot(path=str(ARTIFACTS / "dashboard-live-incident.png"), full_page=True)

    # CSRF: a state change without the session's token is refused
    status = await page.evaluate(
        """async (ns) => (await fetch(`/api/v1/namespaces/${ns}/incidents/inc-live-1/ack`,
            {method: 'POST', credentials: 'same-origin'})).status""",
        console.ns,
    )
    assert status == 403
    await page.goto(f"{console.url}/dashboard/{console.ns}/incidents/inc-live-1")
    assert await page.locator("h1").inner_text() == "p99 latency 1450 ms > 1000 ms"
    await page.screenshot(path=str(ARTIFACTS / "incident.png"), full_page=True)
    await page.goto(f"{console.url}/dashboard")
    await page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)

    # a viewer sees no action buttons, and calling one anyway is refused
    viewer = await login(browser, console, "viewer")
    await viewer.locator('#incidents tr[data-id="inc-live-1"]').wait_for()
    assert await viewer.locator("button.action").count() == 0
    status = await viewer.evaluate(
        """async (ns) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(`/api/v1/namespaces/${ns}/incidents/inc-live-1/ack`,
                {method: 'POST', credentials: 'same-origin', headers: {'X-CSRF-Token': csrf}});
            return r.status; }""",
        console.ns,
    )
    assert status == 403
    await viewer.screenshot(path=str(ARTIFACTS / "dashboard-viewer.png"), full_page=True)
    # keyboard: the skip link is the first stop and leads to the content
    await viewer.keyboard.press("Tab")
    assert await viewer.evaluate("document.activeElement.className") == "skip"
