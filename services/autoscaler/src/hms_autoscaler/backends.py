"""The backends this process can scale with, built from its settings: local, docker and
kubernetes (the last two connect on first use, so a policy naming one that cannot be reached
holds its pool and says why)."""

from __future__ import annotations

import os

from .docker import DockerWorkers
from .kubernetes import KubernetesDeployments
from .local import LocalWorkers
from .ports import Backend
from .settings import AutoscalerSettings

WORKER_PREFIX = "HMS_WORKER_POOL_"


def configured_backends(settings: AutoscalerSettings, nats_url: str) -> dict[str, Backend]:
    """Every backend by name, as a policy's ``backend`` names it."""
    worker_env = {k: v for k, v in os.environ.items() if k.startswith(WORKER_PREFIX)}
    return {
        "local": LocalWorkers(
            settings.state_dir,
            module=settings.local_worker_module,
            launch=settings.local_launch,
            drain_s=settings.worker_drain_s,
            nats_url=nats_url,
            max_workers=settings.local_max_workers,
        ),
        "docker": DockerWorkers(
            settings.docker_url, env=worker_env, stop_timeout_s=int(settings.worker_drain_s)
        ),
        "kubernetes": KubernetesDeployments(kube_config=settings.kube_config),
    }
