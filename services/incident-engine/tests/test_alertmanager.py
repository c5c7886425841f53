"""Prometheus Alertmanager's webhook (version 4) on the engine's HTTP server: a bearer token is
required, the payload is checked, and a real Alertmanager (Debian ``prometheus-alertmanager``)
posting to it opens an incident, runs the playbook its alert names, and closes it on
resolution."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hms_contracts import IncidentClosed, IncidentOpened
from hms_kit import Service
from hms_stack.natsserver import free_port
from hms_testing import NatsHandle, wait_until
from hms_testing.incidents import (
    NS,
    incident_events,
    invocations,
    leading,
    request,
    rollback_playbook,
    stand_in_kubectl,
    wait_for_event,
)
from nats.aio.client import Client
from nats.js import JetStreamContext

TOKEN = "am-shared-secret-0123456789"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def payload(status: str = "firing", **labels: str) -> dict[str, Any]:
    """A version 4 body as Alertmanager sends it."""
    alert = {
        "status": status,
        "labels": {"alertname": "HighLatency", "severity": "critical", **labels},
        "annotations": {"summary": "p99 latency above 1 s"},
        "startsAt": "2026-11-25T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T10:09:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "c0ffee0123456789",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "hms-ops",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


async def post(service: Service, body: object, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{service.health.url}/alertmanager/{NS}", json=body, headers=headers) as r,
    ):
        return r.status, await r.text()


async def test_the_webhook_needs_the_token_and_a_v4_payload(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, [], alertmanager_token=TOKEN) as service:
        assert (await post(service, payload(), token=None))[0] == 401
        assert (await post(service, payload(), token="wrong"))[0] == 401
        status, text = await post(service, {**payload(), "version": "3"})
        assert status == 400
        assert "version" in text
        assert await incident_events(js) == []
        assert (await post(service, payload()))[0] == 200
        assert (await post(service, payload()))[0] == 200  # Alertmanager repeats itself
        assert (await post(service, payload("resolved")))[0] == 200
        events = await wait_for_event(js, lambda s, e: isinstance(e, IncidentClosed), "closed")
    [opened] = [e for _, e in events if isinstance(e, IncidentOpened)]
    assert (opened.fingerprint, opened.title) == ("c0ffee0123456789", "p99 latency above 1 s")


async def test_an_alert_that_cannot_be_taken_leaves_the_others_and_the_chain_whole(
    nats_server: NatsHandle, js: JetStreamContext, nc: Client, tmp_path: Path
) -> None:
    body = payload()
    good = body["alerts"][0]
    bad = {**good, "fingerprint": "badbadbadbad0000", "labels": {"bad-label": "x"}}
    second = {**good, "fingerprint": "0000111122223333"}
    body["alerts"] = [good, bad, second]
    async with leading(nats_server, tmp_path, [], alertmanager_token=TOKEN) as service:
        assert (await post(service, body))[0] == 200
        rows = await wait_until(
            lambda: request(nc, "list", {}), message="the good alerts opened incidents"
        )
        verified = await request(nc, "audit_verify", {})
    assert len(rows) == 2
    assert verified["broken"] is None
    assert verified["checked"] >= 2


async def test_a_webhook_without_a_configured_token_refuses_everything(
    nats_server: NatsHandle, js: JetStreamContext, tmp_path: Path
) -> None:
    async with leading(nats_server, tmp_path, []) as service:
        assert (await post(service, payload(), token=""))[0] == 401
        assert (await post(service, payload()))[0] == 401


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real Alertmanager; its API URL and its config file (written by the test)."""
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager is not installed (apt-get install it; .ci/run does)")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "alertmanager.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{port}", config
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_real_alertmanager_opens_runs_and_closes_an_incident(
    nats_server: NatsHandle,
    js: JetStreamContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    alertmanager: tuple[str, Path],
) -> None:
    kubectl = stand_in_kubectl(tmp_path, monkeypatch)
    api, config = alertmanager
    async with leading(
        nats_server,
        tmp_path,
        [rollback_playbook()],
        alertmanager_token=TOKEN,
        resolve_on_playbook_success=False,
    ) as service:
        config.write_text(
            json.dumps(
                {
                    "route": {
                        "receiver": "hms-ops",
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "hms-ops",
                            "webhook_configs": [
                                {
                                    "url": f"{service.health.url}/alertmanager/{NS}",
                                    "send_resolved": True,
                                    "http_config": {
                                        "authorization": {"type": "Bearer", "credentials": TOKEN}
                                    },
                                }
                            ],
                        }
                    ],
                }
            )
        )
        async with aiohttp.ClientSession() as session:

            async def reloaded() -> bool:
                try:
                    async with session.post(f"{api}/-/reload") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(reloaded, timeout=20, message="alertmanager up with the config")
            now = datetime.now(UTC)
            alert = {
                "labels": {"alertname": "HighLatency", "severity": "critical"}
                | {"playbook": "rollback"},
                "annotations": {"summary": "p99 latency above 1 s"},
                "startsAt": now.isoformat(),
            }
            async with session.post(f"{api}/api/v2/alerts", json=[alert]) as r:
                assert r.status == 200, await r.text()
            await wait_until(lambda: invocations(kubectl), timeout=30, message="the playbook ran")
            alert["endsAt"] = (now + timedelta(seconds=1)).isoformat()
            await asyncio.sleep(1.5)
            async with session.post(f"{api}/api/v2/alerts", json=[alert]) as r:
                assert r.status == 200, await r.text()
            events = await wait_for_event(
                js, lambda s, e: isinstance(e, IncidentClosed), "closed on resolution", timeout=30
            )
    assert invocations(kubectl) == ["rollout undo deploy/benefits-api"]
    [closed] = [e for _, e in events if isinstance(e, IncidentClosed)]
    assert closed.resolution == "auto_resolved"
