"""The playbooks' scale requests in force, one per pool, kept in a JSON file of the state
directory (written whole, then renamed over the old one, as the local backend keeps its
workers) so that a restarted autoscaler keeps flooring the pools it floored. The file is read
again whenever it changed, so a standby instance sharing the state directory that took a request
(the subscriber runs in every instance) hands it to the leader."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from .core import Override

log = logging.getLogger(__name__)

OVERRIDES_FILE = "scale_requests.json"


def _incident(namespace: str, incident_id: str) -> str:
    return f"{namespace}/{incident_id}"


class Overrides:
    """The latest request per pool (``<namespace>.<pool>``), until it lapses or its incident
    closes; and the incidents closed lately (a request of theirs coming late is not kept)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / OVERRIDES_FILE
        self.by_pool: dict[str, Override] = {}
        self.closed: dict[str, float] = {}
        self.listeners: list[Callable[[], None]] = []
        self._seen: tuple[int, int] | None = None
        self.refresh()

    def get(self, pool_id: str) -> Override | None:
        self.refresh()
        return self.by_pool.get(pool_id)

    def refresh(self) -> None:
        """Read the file again if another process (or a restart) changed it."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if (st.st_mtime_ns, st.st_size) != self._seen:
            self._seen = (st.st_mtime_ns, st.st_size)
            self._load()

    def put(self, override: Override) -> bool:
        """Keep ``override`` unless it is already kept (same event id: a redelivery) or a
        later request for the pool is; True when it changed what is kept (and saved it)."""
        self.refresh()
        if _incident(override.namespace, override.incident_id) in self.closed:
            return False
        held = self.by_pool.get(override.pool_id)
        if held is not None and (
            held.event_id == override.event_id or held.requested_at > override.requested_at
        ):
            return False
        self.by_pool[override.pool_id] = override
        self._changed()
        return True

    def close(self, namespace: str, incident_id: str, forget_at: float) -> list[Override]:
        """The incident closed: release its pools now; remember it until ``forget_at`` (when
        any request of its would have lapsed). Those released."""
        self.refresh()
        key = _incident(namespace, incident_id)
        gone = [
            o
            for o in self.by_pool.values()
            if o.namespace == namespace and o.incident_id == incident_id
        ]
        if not gone and key in self.closed:
            return []
        for o in gone:
            del self.by_pool[o.pool_id]
        self.closed[key] = max(forget_at, self.closed.get(key, forget_at))
        self._changed()
        return gone

    def is_closed(self, namespace: str, incident_id: str) -> bool:
        self.refresh()
        return _incident(namespace, incident_id) in self.closed

    def _changed(self) -> None:
        self._save()
        for listener in self.listeners:
            listener()

    def prune(self, now: float) -> list[Override]:
        """Forget the requests that lapsed by ``now``; those forgotten."""
        self.refresh()
        gone = [o for o in self.by_pool.values() if now >= o.until]
        forgotten = [k for k, at in self.closed.items() if now >= at]
        for o in gone:
            del self.by_pool[o.pool_id]
        for k in forgotten:
            del self.closed[k]
        if gone or forgotten:
            self._save()
        return gone

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            loaded = [Override.from_json(e) for e in data["requests"]]
            closed = {str(k): float(v) for k, v in data.get("closed", {}).items()}
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ignoring the unreadable scale requests in %s: %r", self.path, exc)
            return
        self.by_pool = {o.pool_id: o for o in loaded}
        self.closed = closed
        if loaded:
            log.info("%d scale request(s) in force from %s", len(loaded), self.path)

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        entries = [o.as_json() for o in self.by_pool.values()]
        tmp.write_text(json.dumps({"requests": entries, "closed": self.closed}, indent=1))
        tmp.replace(self.path)
        st = self.path.stat()
        self._seen = (st.st_mtime_ns, st.st_size)
