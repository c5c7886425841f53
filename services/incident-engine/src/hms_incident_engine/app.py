"""Builds the incident-engine's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import IncidentEngineSettings


def create_kit(settings: IncidentEngineSettings | None = None) -> ServiceKit:
    """The incident-engine process: broker, app, health, heartbeat, lease."""
    return ServiceKit(
        SERVICE, settings or IncidentEngineSettings(), version=__version__, routers=(router,)
    )
