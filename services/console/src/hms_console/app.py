"""Builds the console's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import ConsoleSettings


def create_kit(settings: ConsoleSettings | None = None) -> ServiceKit:
    """The console process: broker, app, health, heartbeat."""
    return ServiceKit(
        SERVICE, settings or ConsoleSettings(), version=__version__, routers=(router,)
    )
