"""Fixtures of escalation's tests: a real SMTP server (aiosmtpd) that can go down and come back,
a hand-moved clock, the documents' policy and schedule, and an engine on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hms_contracts.config import ConfigObject, parse_object
from hms_incident_engine.escalation import (
    EmailSender,
    EscalationEngine,
    EscalationSettings,
    EscalationStore,
    StaticDirectory,
)
from hms_incident_engine.escalation.links import LinkSigner
from hms_kit import FakeClock
from hms_testing.smtp import SmtpServer

NS = "usds_unemployment"
T0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
LINK_KEY = b"k" * 32

SCHEDULE = {
    "kind": "oncall_schedule",
    "namespace": NS,
    "name": "primary",
    "timezone": "America/New_York",
    "rotations": [
        {
            "name": "weekly",
            "type": "weekly",
            "start": "2026-01-05T09:00",
            "participants": ["ana@agency.gov", "bo@agency.gov"],
        }
    ],
}
POLICY = {
    "kind": "escalation_policy",
    "namespace": NS,
    "name": "default",
    "levels": [
        {"targets": ["schedule:primary"], "delay": "10m"},
        {"targets": ["lead@agency.gov"], "delay": "10m"},
    ],
    "ack_timeout": "30m",
}


def objects(**policy: Any) -> list[ConfigObject]:
    return [parse_object(SCHEDULE), parse_object({**POLICY, **policy})]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def settings_for(smtp: SmtpServer, state: Path, **extra: Any) -> EscalationSettings:
    fields: dict[str, Any] = {
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "smtp_from": "hms-ops@agency.gov",
        "smtp_timeout_s": 5,
        "state_dir": state,
        "public_url": "http://127.0.0.1:9",
    }
    return EscalationSettings(**(fields | extra))


def build_engine(
    smtp: SmtpServer, state: Path, clock: FakeClock, directory: StaticDirectory, **extra: Any
) -> EscalationEngine:
    settings = settings_for(smtp, state, **extra)
    return EscalationEngine(
        EscalationStore(state / "escalation.sqlite3"),
        EmailSender(settings),
        lambda: LinkSigner(LINK_KEY),
        directory,
        clock,
        settings,
        link_base=lambda: "http://127.0.0.1:9",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def directory() -> StaticDirectory:
    return StaticDirectory(objects())


@pytest.fixture
def documents() -> list[dict[str, Any]]:
    """The on-call schedule and the policy, as ``hms-ops apply`` reads them."""
    return [SCHEDULE, POLICY]


EngineFactory = Callable[..., EscalationEngine]


@pytest.fixture
def make_engine(
    smtp: SmtpServer, tmp_path: Path, clock: FakeClock, directory: StaticDirectory
) -> EngineFactory:
    """A new engine on the same state directory (a restart), settings changed by keyword."""
    return lambda **extra: build_engine(smtp, tmp_path, clock, directory, **extra)


@pytest.fixture
async def engine(
    smtp: SmtpServer, tmp_path: Path, clock: FakeClock, directory: StaticDirectory
) -> AsyncIterator[EscalationEngine]:
    engine = build_engine(smtp, tmp_path, clock, directory)
    try:
        yield engine
    finally:
        await engine.close()
        await engine.store.close()
