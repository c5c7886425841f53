"""HTTP ingest: the SDK's contracts and subjects, 4xx naming the field, 413 and 429."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hms_console import remotewrite
from hms_console.testing import Running
from hms_contracts import AgencyEvent, MetricSampleBatch
from hms_testing import wait_until
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext


def sample(value: float = 420.0) -> dict[str, object]:
    return {
        "name": "api.latency_p99",
        "value": value,
        "unit": "ms",
        "labels": {"route": "/claims"},
        "observed_at": datetime.now(UTC).isoformat(),
    }


async def test_a_json_batch_is_published_like_the_sdks_and_graphed(
    console: Running, js: JetStreamContext, nc: Client
) -> None:
    got: list[Msg] = []

    async def keep(msg: Msg) -> None:
        got.append(msg)

    sub = await nc.subscribe(f"ops.metric.{console.ns}.>", cb=keep)
    await nc.flush()
    async with console.client("author") as http:
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics",
            json={"source": "portal", "samples": [sample(420.0), sample(1500.0)]},
        )
        assert r.status_code == 202, r.text
        assert r.json()["subject"] == f"ops.metric.{console.ns}.portal"
        await wait_until(lambda: got, timeout=10, message="the batch on the bus")
        batch = MetricSampleBatch.model_validate_json(got[0].data)
        assert batch.event_id == r.json()["event_id"] == batch.expected_event_id()
        assert got[0].headers is not None
        assert got[0].headers["Nats-Msg-Id"] == batch.event_id
        assert [s.value for s in batch.samples] == [420.0, 1500.0]

        async def listed() -> list[dict[str, object]] | None:
            rows = (await http.get(f"/api/v1/namespaces/{console.ns}/metrics")).json()
            return rows if rows and rows[0]["latest"] is not None else None

        rows = await wait_until(listed, timeout=10, message="the metric in the live window")
        assert rows[0]["name"] == "api.latency_p99"
        points = (await http.get(f"/api/v1/namespaces/{console.ns}/metrics/api.latency_p99")).json()
        assert [p[1] for p in points["points"]] == [420.0, 1500.0]
    await sub.unsubscribe()


async def test_a_bad_sample_gets_422_naming_the_field(console: Running) -> None:
    async with console.client("author") as http:
        bad = sample()
        bad["value"] = "fast"
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics", json={"source": "p", "samples": [bad]}
        )
        assert r.status_code == 422
        assert "samples.0.value" in r.json()["error"]
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics", json={"source": "p", "sample": []}
        )
        assert r.status_code == 422
        assert r.json()["error"].startswith("sample:")
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400


async def test_an_oversized_body_gets_413(console: Running) -> None:
    big = {"source": "p", "samples": [sample()] * 20_000}
    async with console.client("author") as http:
        r = await http.post(f"/api/v1/namespaces/{console.ns}/metrics", json=big)
    assert r.status_code == 413
    assert "over the limit" in r.json()["error"]


async def test_too_many_requests_get_429_with_retry_after(console: Running) -> None:
    limit = console.console.ingest_limit
    limit.rate, limit.burst = 1.0, 3.0
    statuses = []
    async with console.client("admin") as http:
        for i in range(6):
            r = await http.post(
                f"/api/v1/namespaces/{console.ns}/events",
                json={"name": "deploy_finished", "key": f"k{i}"},
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
    assert statuses[:3] == [202, 202, 202]
    assert 429 in statuses[3:]


async def test_agency_events_are_published_on_the_sdks_subject(
    console: Running, js: JetStreamContext
) -> None:
    async with console.client("author") as http:
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/events",
            json=[{"name": "deploy_finished", "key": "d-1", "payload": {"version": "2.3"}}],
        )
        assert r.status_code == 202, r.text
        bad = await http.post(
            f"/api/v1/namespaces/{console.ns}/events", json=[{"name": "has space", "key": "k"}]
        )
        assert bad.status_code == 422
        assert bad.json()["error"].startswith("[0].name")
    msg = await js.get_last_msg("EVENTS", f"ops.event.{console.ns}.deploy_finished")
    assert msg.data is not None
    event = AgencyEvent.model_validate_json(msg.data)
    assert event.payload == {"version": "2.3"}
    assert event.event_id == r.json()["event_ids"][0]
    assert json.loads(msg.data)["key"] == "d-1"


async def test_a_viewer_may_not_ingest(console: Running) -> None:
    async with console.client("viewer") as http:
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/events", json={"name": "x", "key": "k"}
        )
    assert r.status_code == 403


async def test_prometheus_remote_write_is_taken_like_a_push(console: Running, nc: Client) -> None:
    got: list[Msg] = []

    async def keep(msg: Msg) -> None:
        got.append(msg)

    sub = await nc.subscribe(f"ops.metric.{console.ns}.remote_write", cb=keep)
    await nc.flush()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    body = remotewrite.encode(
        [
            ({"__name__": "api_latency_p99", "route": "/claims"}, [(850.0, now_ms - 1000)]),
            ({"__name__": "api_errors_total"}, [(3.0, now_ms), (4.0, now_ms + 1)]),
        ]
    )
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    async with console.client("author") as http:
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics", content=body, headers=headers
        )
        assert r.status_code == 204, r.text
        bad = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics", content=b"not snappy", headers=headers
        )
        assert bad.status_code == 400
        assert "snappy" in bad.json()["error"]
    await wait_until(lambda: got, timeout=10, message="the remote-write batch on the bus")
    batch = MetricSampleBatch.model_validate_json(got[0].data)
    assert batch.origin == "push"
    assert [(s.name, s.value, s.labels) for s in batch.samples] == [
        ("api_latency_p99", 850.0, {"route": "/claims"}),
        ("api_errors_total", 3.0, {}),
        ("api_errors_total", 4.0, {}),
    ]
    assert batch.samples[0].observed_at == datetime.fromtimestamp((now_ms - 1000) / 1000, UTC)
    await sub.unsubscribe()
