"""The playbooks' scale requests in force, one per pool, kept in a JSON file of the state
directory (written whole, then renamed over the old one, as the local backend keeps its
workers) so that a restarted autoscaler keeps flooring the pools it floored."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from .core import Override

log = logging.getLogger(__name__)

OVERRIDES_FILE = "scale_requests.json"


class Overrides:
    """The latest request per pool (``<namespace>.<pool>``), until it lapses."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / OVERRIDES_FILE
        self.by_pool: dict[str, Override] = {}
        self.listeners: list[Callable[[], None]] = []
        self._load()

    def get(self, pool_id: str) -> Override | None:
        return self.by_pool.get(pool_id)

    def put(self, override: Override) -> bool:
        """Keep ``override`` unless it is already kept (same event id: a redelivery) or a
        later request for the pool is; True when it changed what is kept (and saved it)."""
        held = self.by_pool.get(override.pool_id)
        if held is not None and (
            held.event_id == override.event_id or held.requested_at > override.requested_at
        ):
            return False
        self.by_pool[override.pool_id] = override
        self._save()
        for listener in self.listeners:
            listener()
        return True

    def prune(self, now: float) -> list[Override]:
        """Forget the requests that lapsed by ``now``; those forgotten."""
        gone = [o for o in self.by_pool.values() if now >= o.until]
        if gone:
            for o in gone:
                del self.by_pool[o.pool_id]
            self._save()
        return gone

    def _load(self) -> None:
        try:
            entries = json.loads(self.path.read_text())["requests"]
            loaded = [Override.from_json(e) for e in entries]
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ignoring the unreadable scale requests in %s: %r", self.path, exc)
            return
        self.by_pool = {o.pool_id: o for o in loaded}
        if loaded:
            log.info("%d scale request(s) in force from %s", len(loaded), self.path)

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        entries = [o.as_json() for o in self.by_pool.values()]
        tmp.write_text(json.dumps({"requests": entries}, indent=1))
        tmp.replace(self.path)
