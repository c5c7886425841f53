"""What a service cannot do right now, part by part, so ``/healthz`` tells the truth.

A part (``jetstream``, ``config``, ...) that fails reports a reason; the service is degraded
while any reason stands (``/healthz`` answers 503 with every reason, its heartbeat says
``degraded``, the ``hms_degraded{part}`` gauge is 1). The part clears its reason once it works
again, so a service recovers by itself when, say, disk space returns.
"""

from __future__ import annotations

import logging

from .metrics import KitMetrics

log = logging.getLogger(__name__)


class Degradations:
    """The standing reasons a service is degraded, by part."""

    def __init__(self, metrics: KitMetrics) -> None:
        self.metrics = metrics
        self._reasons: dict[str, str] = {}

    def report(self, part: str, reason: str) -> None:
        """``part`` cannot do its work, because of ``reason`` (logged when it changes)."""
        if self._reasons.get(part) != reason:
            log.error("degraded: %s: %s", part, reason)
        self._reasons[part] = reason
        self.metrics.degraded.labels(part=part).set(1)

    def clear(self, part: str) -> None:
        """``part`` works again."""
        if self._reasons.pop(part, None) is not None:
            log.info("recovered: %s works again", part)
        self.metrics.degraded.labels(part=part).set(0)

    @property
    def reasons(self) -> dict[str, str]:
        return dict(self._reasons)

    def __bool__(self) -> bool:
        return bool(self._reasons)
