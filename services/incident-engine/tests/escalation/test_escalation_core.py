"""Escalation's pure decisions: the order of levels and repeats, re-notification, who a level
reaches, retry delays, header-safe text, and the acknowledge link's signature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hms_contracts.config import EscalationPolicy, OncallSchedule, parse_object
from hms_incident_engine.escalation import EscalationSettings, core
from hms_incident_engine.escalation.errors import LinkRefused
from hms_incident_engine.escalation.links import AckClaim, LinkSigner
from pydantic import ValidationError

NS = "usds_unemployment"
T0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)


def policy(**fields: Any) -> EscalationPolicy:
    doc = {
        "kind": "escalation_policy",
        "namespace": NS,
        "name": "default",
        "levels": [
            {"targets": ["a@agency.gov"], "delay": "5m"},
            {"targets": ["schedule:primary", "b@agency.gov"], "delay": "10m"},
        ],
        **fields,
    }
    found = parse_object(doc)
    assert isinstance(found, EscalationPolicy)
    return found


def walk(p: EscalationPolicy) -> list[tuple[int, int, float]]:
    out, step = [], core.first_step(T0)
    while step is not None:
        out.append((step.round, step.level, (step.due_at - T0).total_seconds() / 60))
        found = core.next_step(p, step)
        if found is None:
            break
        step = found
    return out


def test_levels_follow_their_delays_then_repeat_from_level_one() -> None:
    assert walk(policy()) == [(0, 0, 0), (0, 1, 5)]
    assert walk(policy(repeat=2)) == [
        (0, 0, 0), (0, 1, 5), (1, 0, 15), (1, 1, 20), (2, 0, 30), (2, 1, 35),
    ]  # fmt: skip


def test_the_acknowledgement_timeout_defaults_to_thirty_minutes_and_may_be_off() -> None:
    assert core.renotify_at(policy(), T0) == T0 + timedelta(minutes=30)
    assert core.renotify_at(policy(ack_timeout=None), T0) is None


def test_a_level_reaches_whoever_is_on_call_then_and_names_a_missing_schedule() -> None:
    schedule = parse_object(
        {
            "kind": "oncall_schedule", "namespace": NS, "name": "primary",
            "timezone": "America/Toronto",
            "rotations": [{"name": "d", "type": "daily", "start": "2026-03-01T09:00",
                           "participants": ["ana@agency.gov", "b@agency.gov"]}],
        }
    )  # fmt: skip
    assert isinstance(schedule, OncallSchedule)

    def found(name: str) -> OncallSchedule | None:
        return schedule if name == "primary" else None

    # 2026-03-07 12:00 UTC is 07:00 in Toronto: still the 6 March shift, the sixth: b's
    reach = core.recipients(policy(), 1, T0, found)
    assert reach.addresses == ("b@agency.gov",)  # one message even if on call and listed
    assert reach.problems == ()
    missing = core.recipients(policy(), 1, T0, lambda name: None)
    assert missing.addresses == ("b@agency.gov",)
    assert missing.problems == ("level 2: on-call schedule 'primary' does not exist",)


def test_retries_back_off_exponentially_up_to_the_limit() -> None:
    assert [core.retry_delay(n, 30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_text_for_a_header_is_one_line() -> None:
    assert core.one_line("a\r\nBcc: x@y.z\t b") == "a Bcc: x@y.z b"
    assert len(core.one_line("x" * 500)) == 200


def test_a_link_is_refused_when_forged_or_expired() -> None:
    signer = LinkSigner(b"s" * 32)
    claim = AckClaim(NS, "inc-1", "a@agency.gov", T0 + timedelta(hours=1), "nonce")
    token = signer.sign(claim)
    assert signer.verify(token, T0) == claim
    other = LinkSigner(b"t" * 32)
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x.y", "", other.sign(claim)):
        with pytest.raises(LinkRefused) as refused:
            signer.verify(bad, T0)
        assert refused.value.status == 403
    with pytest.raises(LinkRefused, match="expired") as late:
        signer.verify(token, T0 + timedelta(hours=1))
    assert late.value.status == 410


def test_settings_refuse_a_weak_link_key_and_a_clear_text_password_to_a_remote_server() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        EscalationSettings(ack_link_secret="short")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="clear text"):
        EscalationSettings(
            smtp_host="smtp.agency.gov",
            smtp_security="none",
            smtp_password="pw",  # type: ignore[arg-type]
        )
    shown = repr(EscalationSettings(smtp_password="hunter2hunter2"))  # type: ignore[arg-type]
    assert "hunter2" not in shown
