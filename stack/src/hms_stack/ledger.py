"""Notices messages JetStream lost on recovery.

nats-server recovers a damaged store by truncating it, often without a warning (a corrupt
message block loses its tail silently). A stream's last sequence never goes down on its own
(acks, limits and purges remove messages, not sequence numbers), so ``up`` keeps the last
sequence of every stream as last seen, and a stream that comes back lower lost what lay between.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hms_contracts import AlertFiring
from hms_contracts.base import SYSTEM_NAMESPACE
from nats.js import JetStreamContext

log = logging.getLogger(__name__)


async def last_sequences(js: JetStreamContext) -> dict[str, int]:
    """Each stream's last sequence, by name."""
    return {si.config.name or "?": si.state.last_seq for si in await js.streams_info()}


@dataclass(frozen=True)
class Loss:
    """A stream that came back from recovery with fewer messages than it had reached."""

    stream: str
    had: int
    now: int | None  # None: the stream is gone

    @property
    def lost(self) -> int:
        return self.had - (self.now or 0)

    def __str__(self) -> str:
        if self.now is None:
            return f"stream {self.stream} (last sequence {self.had}) is gone after recovery"
        return (
            f"stream {self.stream} is back at sequence {self.now} but had reached {self.had}: "
            f"{self.lost} message(s) lost"
        )


def losses(before: dict[str, int], after: dict[str, int]) -> list[Loss]:
    """Each stream that went back or vanished."""
    return [
        Loss(name, seq, after.get(name))
        for name, seq in sorted(before.items())
        if name not in after or after[name] < seq
    ]


class StreamLedger:
    """The last sequences seen, kept in one JSON file beside the store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, int] = self._load()

    def _load(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}

    async def update(self, js: JetStreamContext, *, recovered: bool) -> list[Loss]:
        """Read every stream's state and remember it; right after the server (re)started
        (``recovered``), first report what was lost since last time. While it runs, a stream
        that goes back or away was deleted on purpose, and is only remembered."""
        now = await last_sequences(js)
        lost = losses(self.seen, now) if recovered else []
        for line in lost:
            log.error("JetStream lost data on recovery: %s", line)
        # a loss is reported once: the new, lower sequence becomes the reference
        if now != self.seen:
            self.seen = now
            tmp = self.path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps(now))
                tmp.replace(self.path)
            except OSError as exc:
                log.warning("cannot record stream sequences in %s: %s", self.path, exc.strerror)
        return lost


def data_loss_alert(loss: Loss, now: datetime) -> AlertFiring:
    """The alert a loss raises, in the system namespace, so it is an incident like any other."""
    fingerprint = hashlib.sha256(f"jetstream_data_lost|{loss.stream}".encode()).hexdigest()[:16]
    return AlertFiring.create(
        occurred_at=now,
        namespace=SYSTEM_NAMESPACE,
        rule_id="jetstream_data_lost",
        metric="jetstream.recovery.lost_messages",
        fingerprint=fingerprint,
        value=float(loss.lost),
        operator=">",
        threshold=0.0,
        severity="critical",
        summary=f"JetStream lost data on recovery: {loss}",
        labels={"stream": loss.stream},
        started_at=now,
    )
