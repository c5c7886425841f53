"""Too many requests: a token bucket per caller, decided from the time given."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateLimit:
    """``rate`` requests per second on average, bursts of ``burst``."""

    rate: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, who: str, now: float) -> float:
        """0.0 when ``who`` may go on; otherwise the seconds to wait (Retry-After)."""
        tokens, last = self._buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[who] = (tokens - 1.0, now)
            return 0.0
        self._buckets[who] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0
