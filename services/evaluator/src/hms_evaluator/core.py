"""The evaluator's decisions as pure functions, without I/O: whether promises hold: rules, SLOs and
job deadlines.
"""

from __future__ import annotations

SERVICE = "evaluator"
