"""Dead-lettering: a message no consumer can accept goes to ``dlq.<subject>`` with its reason.

The original body is kept byte for byte; headers say why (``Hms-Dlq-Reason``), where it came
from (``Hms-Dlq-Subject``, ``Hms-Dlq-Stream``, ``Hms-Dlq-Consumer``) and how often it was
delivered. The JetStream original is then termed, so it is never redelivered, and the consumer
goes on with the next message.
"""

from __future__ import annotations

import logging
from typing import Any

from hms_contracts import subjects
from nats.aio.client import Client
from nats.aio.msg import Msg

from .metrics import KitMetrics

log = logging.getLogger(__name__)

REASON = "Hms-Dlq-Reason"
SUBJECT = "Hms-Dlq-Subject"
STREAM = "Hms-Dlq-Stream"
CONSUMER = "Hms-Dlq-Consumer"
DELIVERIES = "Hms-Dlq-Deliveries"
_MAX_REASON = 1000


def _reason_text(reason: str) -> str:
    # header values are one line
    flat = " ".join(reason.split())
    return flat if len(flat) <= _MAX_REASON else flat[: _MAX_REASON - 1] + "…"


async def dead_letter(
    nc: Client,
    msg: Msg,
    reason: str,
    metrics: KitMetrics | None = None,
    *,
    term: bool = True,
) -> None:
    """Publish ``msg`` to the dead-letter stream with ``reason``, then term the original.

    The DLQ publish is awaited (acked by JetStream) before the original is termed, so a crash
    in between redelivers the message rather than losing it; the dedupe id keeps the repeat out.
    """
    headers: dict[str, str] = {
        k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")
    }
    headers[REASON] = _reason_text(reason)
    headers[SUBJECT] = msg.subject
    msg_id: str | None = None
    try:
        meta = msg.metadata
    except Exception:  # a core NATS message: no JetStream metadata
        meta = None
    if meta is not None:
        headers[STREAM] = meta.stream
        headers[CONSUMER] = meta.consumer or ""
        headers[DELIVERIES] = str(meta.num_delivered)
        msg_id = f"dlq:{meta.stream}:{meta.sequence.stream}"
    elif msg.headers and msg.headers.get("Nats-Msg-Id"):
        msg_id = "dlq:" + msg.headers["Nats-Msg-Id"]
    if msg_id:
        headers["Nats-Msg-Id"] = msg_id
    js = nc.jetstream()
    await js.publish(subjects.dlq(msg.subject), msg.data, headers=headers)
    if meta is not None and term:
        await msg.term()
    if metrics is not None:
        metrics.dead_letters.labels(subject=msg.subject).inc()
    log.warning("dead-lettered message on %s: %s", msg.subject, headers[REASON])


async def dead_letter_part(
    nc: Client,
    msg: Msg,
    data: bytes,
    reason: str,
    *,
    part: str,
    metrics: KitMetrics | None = None,
) -> None:
    """Dead-letter one part of a batch message (``data``, e.g. one work item of many) with
    ``reason`` and the headers :func:`dead_letter` gives; the original message is left to the
    caller (the rest of its batch may be done). ``part`` names the part, for its dedupe id."""
    meta = msg.metadata
    headers = {
        REASON: _reason_text(reason),
        SUBJECT: msg.subject,
        STREAM: meta.stream,
        CONSUMER: meta.consumer or "",
        DELIVERIES: str(meta.num_delivered),
        "Nats-Msg-Id": f"dlq:{meta.stream}:{meta.sequence.stream}:{part}",
    }
    await nc.jetstream().publish(subjects.dlq(msg.subject), data, headers=headers)
    if metrics is not None:
        metrics.dead_letters.labels(subject=msg.subject).inc()
    log.warning("dead-lettered part %s of a message on %s: %s", part, msg.subject, headers[REASON])


def describe_error(exc: BaseException) -> str:
    """A short, precise reason: pydantic errors name each field that is wrong."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items: list[dict[str, Any]] = errors()
        except Exception:  # not a pydantic error after all
            items = []
        if items:
            parts = []
            for err in items[:5]:
                where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
                parts.append(f"{where}: {err.get('msg', 'invalid')}")
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            return f"invalid {type(exc).__name__}: " + "; ".join(parts) + more
    return f"{type(exc).__name__}: {exc}"
