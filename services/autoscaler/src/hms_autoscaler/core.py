"""The autoscaler's decisions as pure functions, without I/O: how many workers each queue needs
(min/max, stabilization, scale to zero).
"""

from __future__ import annotations

SERVICE = "autoscaler"
