"""Every route x every role against the one allow/deny table (hms_console.core.policy.ROUTES):
the table and the app agree, allowed calls pass the gate, denied ones get 403 (401 without a
token), and nothing is allowed in another namespace."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hms_console.core.policy import ROUTES, Principal, allowed
from hms_console.testing import Responder, Running
from hms_console.web import create_app, routes_of

CALLERS = ("anonymous", "viewer", "responder", "author", "admin", "other_admin")

PARAMS = {
    "incident_id": "inc-1",
    "kind": "metric",
    "name": "api.latency_p99",
    "metric": "api.latency_p99",
    "playbook": "rollback",
    "silence_id": "s1",
    "sequence": "1",
    "queue": "claims_q",
    "slo": "sla_latency_breach",
    "action": "ack",
    "path": "console.css",
}


def concrete(template: str, namespace: str) -> str:
    path = template.replace("{path:path}", PARAMS["path"])
    path = path.replace("{namespace}", namespace)
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)


def body_for(method: str, template: str) -> dict[str, Any] | None:
    if template.endswith("/config/{kind}/{name}") and method == "PUT":
        return {"unit": "ms", "source": "https://benefits.gov/api"}
    if template.endswith("/metrics") and method == "POST":
        return {
            "source": "portal",
            "samples": [
                {
                    "name": "api.latency_p99",
                    "value": 5,
                    "unit": "ms",
                    "observed_at": "2026-01-01T00:00:00Z",
                }
            ],
        }
    if template.endswith("/events") and method == "POST":
        return {"name": "deploy_finished", "key": "k1", "payload": {}}
    if template.endswith("/silences") and method == "POST":
        return {"rule_id": "sla_latency_breach", "for": "1h"}
    return None


def principal_of(who: str, ns: str) -> Principal | None:
    if who == "anonymous":
        return None
    if who == "other_admin":
        return Principal("x", who, "admin", "ssa")
    return Principal("x", who, who, ns)  # type: ignore[arg-type]


def test_the_table_and_the_app_agree(console: Running) -> None:
    served = set(routes_of(create_app(console.console)))
    assert served - set(ROUTES) == set(), "routes missing from the allow/deny table"
    assert set(ROUTES) - served == set(), "table entries the app does not serve"


def test_unknown_route_need_denies_everyone() -> None:
    admin = Principal("x", "root", "admin", "*")
    assert not allowed(admin, None, "ns")


@pytest.mark.slow
async def test_every_route_for_every_role(console: Running, responder: Responder) -> None:
    failures: list[str] = []
    for method, template in sorted(ROUTES):
        need = ROUTES[(method, template)]
        path = concrete(template, console.ns)
        for who in CALLERS:
            principal = principal_of(who, console.ns)
            expected = allowed(principal, need, console.ns)
            async with console.client(None if who == "anonymous" else who) as http:
                body = body_for(method, template)
                if template.endswith("/live"):
                    async with http.stream(method, path) as r:
                        status = r.status_code
                else:
                    r = await http.request(method, path, json=body)
                    status = r.status_code
            if expected and status in (401, 403):
                failures.append(f"{who} {method} {path}: {status}, expected allowed")
            if not expected and status not in (401, 403):
                failures.append(f"{who} {method} {path}: {status}, expected denied")
            if not expected and who != "anonymous" and status != 403:
                failures.append(f"{who} {method} {path}: {status}, expected 403")
    assert failures == []
