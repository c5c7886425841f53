"""The autoscaler's decisions as pure functions, without I/O: how many workers each pool needs
(min/max, activation, tolerance, stabilization, step limits, scale to zero). ``now`` is always
an argument."""

from __future__ import annotations

from .decide import BACKLOG, Decision, Demand, Reading, Scaler, demand
from .override import Floor, Override, floor_of

SERVICE = "autoscaler"

__all__ = [
    "BACKLOG",
    "SERVICE",
    "Decision",
    "Demand",
    "Floor",
    "Override",
    "Reading",
    "Scaler",
    "demand",
    "floor_of",
]
