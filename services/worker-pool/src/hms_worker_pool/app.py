"""Builds the worker-pool's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import WorkerPoolSettings


def create_kit(settings: WorkerPoolSettings | None = None) -> ServiceKit:
    """The worker-pool process: broker, app, health, heartbeat."""
    return ServiceKit(
        SERVICE, settings or WorkerPoolSettings(), version=__version__, routers=(router,)
    )
