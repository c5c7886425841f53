"""Escalation's decisions as pure functions: which policy, who is notified, what comes next,
when to try again, and what the message says."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hms_contracts.config import EscalationPolicy, OncallSchedule
from hms_contracts.config.oncall import who_is_on_call

POLICY_LABEL = "escalation_policy"
"""An incident's label naming its policy; without it the namespace's ``default`` policy."""

DEFAULT_POLICY = "default"


def choose_policy(
    labels: Mapping[str, str], policy: Callable[[str], EscalationPolicy | None]
) -> EscalationPolicy | None:
    """The incident's policy: the one its ``escalation_policy`` label names, else ``default``."""
    return policy(labels.get(POLICY_LABEL, DEFAULT_POLICY))


@dataclass(frozen=True, slots=True)
class StepAt:
    """A level of a policy due at a time: ``round`` counts the policy's repeats from 0."""

    round: int
    level: int
    due_at: datetime


def first_step(at: datetime) -> StepAt:
    return StepAt(0, 0, at)


def next_step(policy: EscalationPolicy, step: StepAt) -> StepAt | None:
    """The step after ``step`` if nobody acknowledges: the next level once this level's delay
    is over, then level 1 again while repeats are left; None after the last."""
    due = step.due_at + policy.levels[step.level].delay_td
    if step.level + 1 < len(policy.levels):
        return StepAt(step.round, step.level + 1, due)
    if step.round < policy.repeat:
        return StepAt(step.round + 1, 0, due)
    return None


def renotify_at(policy: EscalationPolicy, acknowledged_at: datetime) -> datetime | None:
    """When an acknowledged incident still open is notified again (None: never)."""
    timeout = policy.ack_timeout_td
    return None if timeout is None else acknowledged_at + timeout


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who a level reaches now, and why some targets reach nobody."""

    addresses: tuple[str, ...]
    problems: tuple[str, ...]


def recipients(
    policy: EscalationPolicy,
    level: int,
    at: datetime,
    schedule: Callable[[str], OncallSchedule | None],
) -> Recipients:
    """The addresses of level ``level`` at ``at``: e-mail targets as they are, schedules by
    who is on call then; a schedule that is missing or has nobody on call is a problem."""
    found: list[str] = []
    problems: list[str] = []
    for target in policy.levels[level].targets:
        if target.email is not None:
            found.append(target.email)
            continue
        name = str(target.schedule)
        sched = schedule(name)
        if sched is None:
            problems.append(f"level {level + 1}: on-call schedule {name!r} does not exist")
            continue
        person = who_is_on_call(sched, at)
        if person is None:
            problems.append(f"level {level + 1}: nobody is on call in schedule {name!r}")
        else:
            found.append(person)
    return Recipients(tuple(dict.fromkeys(found)), tuple(problems))


ONCALL = "oncall"
"""A playbook's notify target meaning: whoever the namespace's default policy notifies first."""


def notify_recipients(
    targets: Sequence[str],
    at: datetime,
    schedule: Callable[[str], OncallSchedule | None],
    policy: Callable[[str], EscalationPolicy | None],
) -> Recipients:
    """The addresses of a playbook's notify targets at ``at``. A target is an e-mail address,
    an on-call schedule (``schedule:NAME`` or its bare name: whoever is on call), an escalation
    policy's name (whoever its level 1 reaches), or ``oncall`` (the ``default`` policy's level
    1); anything else is a problem naming it."""
    found: list[str] = []
    problems: list[str] = []
    for target in targets:
        name = target.removeprefix("schedule:")
        if "@" in target:
            found.append(target)
        elif (sched := schedule(name)) is not None:
            person = who_is_on_call(sched, at)
            if person is None:
                problems.append(f"target {target!r}: nobody is on call in schedule {name!r}")
            else:
                found.append(person)
        elif (chosen := policy(DEFAULT_POLICY if target == ONCALL else target)) is not None:
            reach = recipients(chosen, 0, at, schedule)
            found += reach.addresses
            problems += [f"target {target!r}: {p}" for p in reach.problems]
        else:
            problems.append(
                f"target {target!r} is neither an e-mail address, an on-call schedule nor an "
                "escalation policy"
            )
    return Recipients(tuple(dict.fromkeys(found)), tuple(problems))


def retry_delay(attempts: int, longest_s: float) -> float:
    """Seconds before the next delivery attempt after ``attempts`` failed ones: 1, 2, 4 ...
    up to ``longest_s``."""
    return float(min(longest_s, 2.0 ** max(attempts - 1, 0)))


def one_line(text: str, limit: int = 200) -> str:
    """Text fit for a header: every run of whitespace (line breaks included) one space."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Incident:
    """What a notification tells about an incident."""

    namespace: str
    incident_id: str
    title: str
    severity: str
    opened_at: datetime
    labels: Mapping[str, str]


def escalation_subject(incident: Incident, level: int) -> str:
    return one_line(
        f"[hms-ops {incident.severity}] {incident.namespace}: {incident.title} "
        f"(escalation level {level + 1})"
    )


def escalation_body(incident: Incident, level: int, ack_url: str, expires: timedelta) -> str:
    labels = "".join(f"  {k}: {v}\n" for k, v in sorted(incident.labels.items())) or "  none\n"
    hours = expires.total_seconds() / 3600
    return (
        f"Incident {incident.incident_id} in {incident.namespace} needs a person.\n\n"
        f"What: {incident.title}\n"
        f"Severity: {incident.severity}\n"
        f"Opened: {incident.opened_at.isoformat()}\n"
        f"Escalation level: {level + 1}\n"
        f"Labels:\n{labels}\n"
        f"To acknowledge, open this link and confirm (it works once, for {hours:g} h):\n"
        f"{ack_url}\n\n"
        "Until someone acknowledges, the next level of the escalation policy is notified.\n"
    )
