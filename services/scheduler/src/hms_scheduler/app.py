"""Builds the scheduler's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import SchedulerSettings


def create_kit(settings: SchedulerSettings | None = None) -> ServiceKit:
    """The scheduler process: broker, app, health, heartbeat, lease."""
    return ServiceKit(
        SERVICE, settings or SchedulerSettings(), version=__version__, routers=(router,)
    )
