"""The console in `hms-ops up`, under its own least-privilege NATS user: a token made with the
CLI opens the API; an author's config and metrics show on the dashboard; the incident engine
answers a command; an admin pauses a queue and silences an alert; every change is in an audit
chain that verifies; and NATS refused nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hms_ops.state import StatePaths
from hms_testing import wait_for
from hms_testing.stacks import RunningStack, hms_ops_in, start_stack, stop_stack

pytestmark = pytest.mark.slow

NS = "usds_unemployment"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("console-stack"))
    try:
        yield running
    finally:
        stop_stack(running)


def test_the_console_works_under_its_own_user(stack: RunningStack) -> None:
    made = hms_ops_in(StatePaths(stack.state_dir), "tokens", "create", "--role", "author",
                      "--namespace", NS, "--name", "portal")  # fmt: skip
    assert made.returncode == 0, made.stderr
    base = stack.info["dashboard_url"].removesuffix("/dashboard")
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    with httpx.Client(base_url=base, headers=headers, timeout=20) as http:
        api = f"/api/v1/namespaces/{NS}"
        for kind, name, body in (
            ("metric", "api.latency_p99", {"unit": "ms", "source": "https://benefits.gov/api"}),
            ("alert", "sla_latency_breach", {"metric": "api.latency_p99", "condition": "> 1000"}),
        ):
            r = http.put(f"{api}/config/{kind}/{name}", json=body)
            assert r.status_code == 200, r.text
        sample = {"name": "api.latency_p99", "value": 640.0, "unit": "ms",
                  "observed_at": datetime.now(UTC).isoformat()}  # fmt: skip
        r = http.post(f"{api}/metrics", json={"source": "portal", "samples": [sample]})
        assert r.status_code == 202, r.text

        def graphed() -> str | None:
            page = http.get(f"/dashboard/{NS}")
            ok = page.status_code == 200 and "latest 640 ms" in page.text
            return page.text if ok and "sla_latency_breach" in page.text else None

        page = wait_for(graphed, 30, "the metric and the alert's promise on the dashboard")
        assert 'data-metric="api.latency_p99"' in page
        r = http.post(f"{api}/incidents/inc-1/ack")
        assert r.status_code == 404, r.text  # the incident engine answers: no such incident
        assert "inc-1" in r.json()["error"]
    made = hms_ops_in(StatePaths(stack.state_dir), "tokens", "create", "--role", "admin",
                      "--namespace", NS, "--name", "oncall-lead")  # fmt: skip
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    with httpx.Client(base_url=base, headers=headers, timeout=20) as http:
        # overrides under the console's own user: the pause key, a silence in the registry
        for action in ("pause", "resume"):
            r = http.post(f"{api}/queues/claims_q/{action}")
            assert r.status_code == 200, r.text
            assert r.json()["changed"] is True
        silence = {"rule_id": "sla_latency_breach", "for": "1h", "reason": "maintenance"}
        r = http.post(f"{api}/silences", json=silence)
        assert r.status_code == 200, r.text
        verified = http.get(f"{api}/audit/verify").json()
        assert verified["ok"] is True
        assert verified["records"] >= 7  # tokens, config writes, the ack, pause, resume, silence
    time.sleep(0.5)
    log = (Path(stack.state_dir) / "logs" / "console.log").read_text()
    assert "permissions violation" not in log
