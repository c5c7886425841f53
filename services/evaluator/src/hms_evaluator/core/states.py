"""An alert's life as Prometheus lives it: inactive → pending → firing → resolved (inactive).

``step`` is the whole state machine, a pure function of the state, whether the condition holds
now (None: leave everything as it is, the ``keep_state`` no-data policy) and the time:

- the condition starts to hold: pending (``active_since`` = now), or firing at once when
  ``for`` is 0;
- it has held for ``for``: firing;
- it stops holding while pending: back to inactive, nothing announced;
- it stops holding while firing: it keeps firing for ``keep_firing_for`` after it last held,
  then resolves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Phase = Literal["inactive", "pending", "firing"]


@dataclass(slots=True)
class AlertState:
    """Where one alert (a rule on one series) stands. Times are POSIX seconds."""

    phase: Phase = "inactive"
    active_since: float | None = None
    last_held: float | None = None
    value: float = 0.0

    def copy(self) -> AlertState:
        return AlertState(self.phase, self.active_since, self.last_held, self.value)


Change = Literal["fired", "resolved"]


def step(
    state: AlertState,
    holds: bool | None,
    value: float | None,
    now: float,
    *,
    for_s: float,
    keep_firing_s: float,
) -> Change | None:
    """Move ``state`` to ``now`` and say whether the alert fired or resolved."""
    if holds is None:
        return None
    if value is not None:
        state.value = value
    if holds:
        state.last_held = now
        if state.phase == "inactive":
            state.phase, state.active_since = "pending", now
        since = now if state.active_since is None else state.active_since
        if state.phase == "pending" and now - since >= for_s:
            state.phase = "firing"
            return "fired"
        return None
    if state.phase == "pending":
        state.phase, state.active_since = "inactive", None
        return None
    if state.phase == "firing":
        if state.last_held is not None and now - state.last_held < keep_firing_s:
            return None
        state.phase = "inactive"
        return "resolved"
    return None


def fingerprint(namespace: str, rule: str, labels: dict[str, str]) -> str:
    """The identity of an alert: its namespace, its rule and its series' labels (16 hex
    characters, as Alertmanager's); the same alert keeps it across firings and restarts."""
    # unit and record separators cannot occur in a namespace, a rule name or a label name
    parts = [namespace, rule, *(f"{k}\x1e{v}" for k, v in sorted(labels.items()))]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
