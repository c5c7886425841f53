"""The backends this process can scale with, built from its settings: local always; docker and
kubernetes when their clients are installed (they connect on first use)."""

from __future__ import annotations

from .local import LocalWorkers
from .ports import Backend
from .settings import AutoscalerSettings


def configured_backends(settings: AutoscalerSettings, nats_url: str) -> dict[str, Backend]:
    """Every backend by name, as a policy's ``backend`` names it."""
    found: dict[str, Backend] = {
        "local": LocalWorkers(
            settings.state_dir,
            module=settings.local_worker_module,
            launch=settings.local_launch,
            drain_s=settings.local_drain_s,
            nats_url=nats_url,
        )
    }
    return found
