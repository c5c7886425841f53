"""Builds the metrics-collector's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import MetricsCollectorSettings


def create_kit(settings: MetricsCollectorSettings | None = None) -> ServiceKit:
    """The metrics-collector process: broker, app, health, heartbeat."""
    return ServiceKit(
        SERVICE, settings or MetricsCollectorSettings(), version=__version__, routers=(router,)
    )
