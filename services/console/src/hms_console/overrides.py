"""The overrides that are not requests to a service: each done the way its CLI does it, on
behalf of the person who asked, and audited with them as the actor.

- silences are ``silence`` config objects the incident engine follows (``hms-ops silences``);
- a queue is paused by its key in the ``hms_job_control`` bucket the workers read
  (``hms-ops queues pause|resume``);
- a dead letter is replayed onto its subject and removed from ``DLQ`` (``hms-ops dlq replay``);
- a metric range beyond the live window is a MetricQuery the metrics-collector answers.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from hms_contracts import subjects
from hms_contracts.config import Silence, parse_duration
from hms_contracts.config.base import ConfigError
from hms_contracts.metrics import MetricQuery, MetricQueryResult
from hms_ops.dlqcli import DeadLetterError, letter, one, replay
from hms_ops.errors import InvalidObject
from hms_ops.queuescli import set_paused
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError

from .errors import AnswerTimedOut, BadAnswer, NobodyAnswers

__all__ = [
    "BadRequest",
    "NotFound",
    "expired",
    "new_silence",
    "pause",
    "query_metric",
    "replay_dead_letter",
]


class BadRequest(ValueError):
    """The override's particulars are wrong (422)."""


class NotFound(LookupError):
    """What the override names does not exist in the namespace (404)."""


def new_silence(namespace: str, actor: str, args: dict[str, Any], now: datetime) -> Silence:
    """A silence from the API's body: ``matchers`` (or ``rule_id``, read as
    ``alertname="<rule_id>"``), ``for`` (e.g. ``2h``) or ``ends_at``, ``reason``, optional
    ``name``; the author is the person, whatever the body says."""
    matchers = args.get("matchers")
    if matchers is None and isinstance(args.get("rule_id"), str):
        matchers = [f'alertname="{args["rule_id"]}"']
    if not matchers:
        raise BadRequest("matchers: give the labels to silence, or rule_id")
    ends_at: Any = args.get("ends_at")
    if ends_at is None:
        duration = args.get("for")
        if not isinstance(duration, str):
            raise BadRequest("for: how long, e.g. 2h (or ends_at)")
        try:
            ends_at = now + parse_duration(duration)
        except (ConfigError, ValueError) as exc:
            raise BadRequest(f"for: {exc}") from None
    name = args.get("name") or f"console-{now:%Y%m%d%H%M}-{secrets.token_hex(3)}"
    try:
        return Silence.model_validate(
            {
                "namespace": namespace,
                "name": name,
                "matchers": matchers,
                "starts_at": args.get("starts_at"),
                "ends_at": ends_at,
                "author": actor,
                "reason": args.get("reason") or "",
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(problems) from None


def expired(silence: Silence, now: datetime) -> Silence:
    """The silence ended now (as ``hms-ops silences expire``: a new version, history kept)."""
    starts = (
        silence.starts_at if silence.starts_at is not None and silence.starts_at < now else None
    )
    return Silence.model_validate(silence.model_dump() | {"ends_at": now, "starts_at": starts})


async def pause(nc: Client, namespace: str, queue: str, paused: bool, actor: str) -> Any:
    """Pause or resume ``queue`` as ``hms-ops queues pause|resume`` does (audited)."""
    try:
        return await set_paused(nc, namespace, queue, paused, actor)
    except InvalidObject as exc:
        raise BadRequest(str(exc)) from None


async def replay_dead_letter(nc: Client, namespace: str, seq: int, actor: str) -> Any:
    """Replay dead letter ``seq`` as ``hms-ops dlq replay`` does (audited), once it is one of
    ``namespace``'s: another namespace's dead letter is not found here."""
    try:
        row = letter(await one(nc, seq))
    except DeadLetterError as exc:
        raise NotFound(str(exc)) from None
    target = row["subject"] or ""
    if len(target.split(".")) < 3 or target.split(".")[2] != namespace:
        raise NotFound(f"no dead letter with sequence {seq} in namespace {namespace}")
    try:
        return await replay(nc, seq, actor)
    except DeadLetterError as exc:
        raise BadRequest(str(exc)) from None


async def query_metric(
    nc: Client, namespace: str, metric: str, since_s: float, timeout: float
) -> MetricQueryResult:
    """Ask the metrics-collector for ``metric``'s last ``since_s`` seconds."""
    step = max(60.0, since_s / 500)  # at most ~500 points a series
    query = MetricQuery(series=metric, range_s=since_s, step_s=step, fn="avg")
    subject = subjects.QUERY_METRICS.subject(namespace)
    try:
        msg = await nc.request(subject, query.model_dump_json().encode(), timeout=timeout)
    except NoRespondersError:
        raise NobodyAnswers(
            f"nobody answers {subject}: the metrics-collector is not running; only the live "
            "window can be shown"
        ) from None
    except (TimeoutError, NatsTimeout):
        raise AnswerTimedOut(f"no answer on {subject} within {timeout:g}s") from None
    try:
        return MetricQueryResult.model_validate_json(msg.data)
    except ValidationError as exc:
        raise BadAnswer(f"the answer on {subject} is not a MetricQueryResult: {exc}") from None
