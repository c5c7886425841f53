"""What a service cannot do right now, part by part, so ``/healthz`` tells the truth.

A part (``jetstream``, ``config``, ...) that works with reduced ability reports a reason; the
service is degraded while any reason stands (``/healthz`` and heartbeats say ``degraded`` with
every reason, the ``hms_degraded{part}`` gauge is 1). A part that cannot do the service's work
at all (JetStream refuses writes on a full disk) also makes it not ready: ``/healthz`` answers
503. A part that works on (a config entry it cannot read: the last good version is kept) leaves
it ready: 200. The part clears its reason once it works again, so the service recovers by itself.
"""

from __future__ import annotations

import logging

from .metrics import KitMetrics

log = logging.getLogger(__name__)


class Degradations:
    """The standing reasons a service is degraded, by part."""

    def __init__(self, metrics: KitMetrics) -> None:
        self.metrics = metrics
        self._reasons: dict[str, tuple[str, bool]] = {}

    def report(self, part: str, reason: str, *, ready: bool = True) -> None:
        """``part`` works with reduced ability (``ready``) or not at all, because of ``reason``
        (logged when it changes)."""
        if self._reasons.get(part) != (reason, ready):
            log.error("degraded: %s: %s", part, reason)
        self._reasons[part] = (reason, ready)
        self.metrics.degraded.labels(part=part).set(1)

    def clear(self, part: str) -> None:
        """``part`` works again."""
        if self._reasons.pop(part, None) is not None:
            log.info("recovered: %s works again", part)
        self.metrics.degraded.labels(part=part).set(0)

    @property
    def reasons(self) -> dict[str, str]:
        return {part: reason for part, (reason, _) in self._reasons.items()}

    @property
    def blocking(self) -> bool:
        """Whether some part cannot do the service's work at all (not ready)."""
        return any(not ready for _, ready in self._reasons.values())

    def __bool__(self) -> bool:
        return bool(self._reasons)
