"""Builds the autoscaler's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import AutoscalerSettings


def create_kit(settings: AutoscalerSettings | None = None) -> ServiceKit:
    """The autoscaler process: broker, app, health, heartbeat, lease."""
    return ServiceKit(
        SERVICE, settings or AutoscalerSettings(), version=__version__, routers=(router,)
    )
