"""Notices messages JetStream lost on recovery.

nats-server recovers a damaged store by truncating it, often without a warning (a corrupt
message block loses its tail silently). A stream's last sequence never goes down on its own
(acks, limits and purges remove messages, not sequence numbers), so ``up`` keeps the last
sequence of every stream as last seen, and a stream that comes back lower lost what lay between.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nats.js import JetStreamContext

log = logging.getLogger(__name__)


async def last_sequences(js: JetStreamContext) -> dict[str, int]:
    """Each stream's last sequence, by name."""
    return {si.config.name or "?": si.state.last_seq for si in await js.streams_info()}


def losses(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """One sentence per stream that went back or vanished."""
    found = []
    for name, seq in sorted(before.items()):
        if name not in after:
            found.append(f"stream {name} (last sequence {seq}) is gone after recovery")
        elif after[name] < seq:
            found.append(
                f"stream {name} is back at sequence {after[name]} but had reached {seq}: "
                f"{seq - after[name]} message(s) lost"
            )
    return found


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

    async def update(self, js: JetStreamContext, *, recovered: bool) -> list[str]:
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
