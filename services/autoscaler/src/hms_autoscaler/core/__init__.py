"""The autoscaler's decisions as pure functions, without I/O: how many workers each pool needs
(min/max, activation, tolerance, stabilization, step limits, scale to zero). ``now`` is always
an argument."""

from __future__ import annotations

from .decide import BACKLOG, Decision, Demand, Reading, Scaler, demand

SERVICE = "autoscaler"

__all__ = ["BACKLOG", "SERVICE", "Decision", "Demand", "Reading", "Scaler", "demand"]
