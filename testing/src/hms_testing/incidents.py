"""The incident engine's test pieces: an engine in the test's event loop on a real nats-server,
alerts to publish, the incident events it published, and a stand-in ``kubectl``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import CATALOGUE, AlertFiring, AlertResolved, specs
from hms_contracts.bus import BusEvent
from hms_contracts.config import Alert, ConfigObject, Playbook
from hms_incident_engine.app import create_service
from hms_incident_engine.engine import Engine, StaticConfig
from hms_incident_engine.settings import IncidentEngineSettings
from hms_kit import Service, ensure_stream, publish
from nats import connect as nats_connect
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from .running import running
from .servers import NatsHandle
from .waiting import wait_until

NS = "usds_unemployment"
STARTED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

KUBECTL = """#!/bin/sh
# a stand-in kubectl: logs its arguments, fails or hangs when asked to
echo "$@" >> "$KUBECTL_LOG"
case "$*" in
  *fail*) echo "error: deployment not found" >&2; exit 3 ;;
  *hang*) sleep 600 ;;
esac
echo "deployment.apps/$4 rolled back"
"""


def stand_in_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``kubectl`` first on PATH; returns the log of its invocations."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(KUBECTL.replace("$KUBECTL_LOG", str(tmp_path / "kubectl.log")))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    return tmp_path / "kubectl.log"


def invocations(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def rollback_playbook(*steps: Any, params: dict[str, Any] | None = None, **extra: Any) -> Playbook:
    """The documents' playbook: roll the deployment back, then tell on-call."""
    doc: dict[str, Any] = {
        "namespace": NS,
        "name": "rollback",
        "steps": list(steps)
        or ["kubectl rollout undo deploy/benefits-api", "notify oncall 'Rollback complete'"],
        "params": params or {},
        **extra,
    }
    return Playbook.model_validate(doc)


def latency_rule(playbook: str = "rollback") -> Alert:
    return Alert.model_validate(
        {
            "namespace": NS,
            "name": "api_latency_p99_high",
            "metric": "api.latency_p99",
            "condition": "> 1000",
            "window": "5m",
            "playbook": playbook,
        }
    )


def firing(
    fingerprint: str = "a1b2c3d4e5f60718",
    labels: dict[str, str] | None = None,
    started: datetime = STARTED,
    rule: str = "api_latency_p99_high",
) -> AlertFiring:
    return AlertFiring.create(
        namespace=NS,
        occurred_at=started,
        rule_id=rule,
        metric="api.latency_p99",
        fingerprint=fingerprint,
        value=1450.0,
        operator=">",
        threshold=1000.0,
        severity="critical",
        summary="p99 latency 1450 ms > 1000 ms",
        labels=labels or {},
        started_at=started,
        for_s=300.0,
    )


def resolved(fingerprint: str = "a1b2c3d4e5f60718", started: datetime = STARTED) -> AlertResolved:
    return AlertResolved.create(
        namespace=NS,
        occurred_at=started,
        rule_id="api_latency_p99_high",
        metric="api.latency_p99",
        fingerprint=fingerprint,
        value=800.0,
        operator=">",
        threshold=1000.0,
        severity="critical",
        summary="p99 latency back under 1000 ms",
        labels={},
        started_at=started,
        resolved_at=started,
    )


def settings_for(nats: NatsHandle, state: Path, **extra: Any) -> IncidentEngineSettings:
    return IncidentEngineSettings(
        nats_url=nats.url, state_dir=state, heartbeat_interval_s=60, **extra
    )


@asynccontextmanager
async def leading(
    nats: NatsHandle, state: Path, objects: Sequence[ConfigObject], **extra: Any
) -> AsyncIterator[Service]:
    """An incident engine that leads, following ``objects`` as its config."""
    nc = await nats_connect(nats.url)
    try:
        await ensure_stream(nc.jetstream(), specs.ALERTS)  # the evaluator's
    finally:
        await nc.close()
    service = create_service(settings_for(nats, state, **extra), config=StaticConfig(objects))
    async with running(service):
        await wait_until(
            lambda: service.broker.context.get("leading_engine") is not None,
            timeout=40,  # a loaded machine: starting, provisioning and the lease take a while
            message="it leads",
        )
        yield service


def engine_of(service: Service) -> Engine:
    engine = service.broker.context.get("engine")
    assert isinstance(engine, Engine)
    return engine


async def send(js: JetStreamContext, *events: BusEvent) -> None:
    for event in events:
        await publish(js, event)


async def stream_events(js: JetStreamContext, stream: str) -> list[tuple[str, BusEvent]]:
    """Every event in a stream: (subject, event)."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    out: list[tuple[str, BusEvent]] = []
    for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        subject = msg.subject or ""
        model = next(m for m in CATALOGUE if _matches(m, subject))
        out.append((subject, model.model_validate_json(msg.data or b"")))
    return out


def _matches(model: type[BusEvent], subject: str) -> bool:
    from hms_contracts import subjects

    return subjects.matches(model.subject_pattern(), subject)


async def incident_events(js: JetStreamContext) -> list[tuple[str, BusEvent]]:
    return await stream_events(js, specs.INCIDENTS.name)


async def wait_for_event(
    js: JetStreamContext, pred: Callable[[str, BusEvent], bool], message: str, timeout: float = 20
) -> list[tuple[str, BusEvent]]:
    found: list[tuple[str, BusEvent]] = []

    async def seen() -> bool:
        nonlocal found
        found = await incident_events(js)
        return any(pred(s, e) for s, e in found)

    await wait_until(seen, timeout=timeout, message=message)
    return found


async def request(nc: Any, verb: str, body: dict[str, Any], ns: str = NS) -> Any:
    from hms_contracts import subjects

    reply = await nc.request(
        subjects.INCIDENT_COMMAND.subject(ns, verb), json.dumps(body).encode(), timeout=10
    )
    answer = json.loads(reply.data)
    assert answer["ok"], answer
    return answer["result"]
