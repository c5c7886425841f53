"""Builds the evaluator's broker and app, and nothing else."""

from __future__ import annotations

from hms_kit import ServiceKit

from . import __version__
from .core import SERVICE
from .handlers import router
from .settings import EvaluatorSettings


def create_kit(settings: EvaluatorSettings | None = None) -> ServiceKit:
    """The evaluator process: broker, app, health, heartbeat, lease."""
    return ServiceKit(
        SERVICE, settings or EvaluatorSettings(), version=__version__, routers=(router,)
    )
