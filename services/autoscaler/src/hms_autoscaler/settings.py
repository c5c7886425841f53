"""Settings of the autoscaler service (environment prefix ``HMS_AUTOSCALER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from hms_kit import ServiceSettings, settings_config
from pydantic import Field

from .core import SERVICE


class AutoscalerSettings(ServiceSettings):
    """Everything the autoscaler reads from its environment.

    A local worker gets the autoscaler's environment without the ``HMS_AUTOSCALER_`` variables,
    so its NATS user and password come from ``HMS_WORKER_POOL_*`` variables set for the
    autoscaler (``HMS_WORKER_POOL_NATS_URL`` defaults to the autoscaler's own URL).
    """

    model_config = settings_config(SERVICE)

    local_worker_module: str = Field(
        default="hms_worker_pool",
        pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$",
        description="Module a local worker runs (python -m MODULE)",
    )
    local_launch: Literal["fork", "exec"] = Field(
        default="fork",
        description="fork: from a server that preloaded the worker (fast); exec: python -m",
    )
    worker_drain_s: float = Field(
        default=30.0,
        gt=0,
        description="After SIGTERM to a worker (a process or a container), until SIGKILL",
    )
    local_max_workers: int = Field(
        default=32,
        ge=0,
        le=10_000,
        description="Most local workers of all pools together (a policy asking for more holds)",
    )
    local_stop_on_exit: bool = Field(
        default=True,
        description="A graceful stop (SIGTERM) drains the local workers; a crash leaves them "
        "to the next instance",
    )
    scale_request_for_s: float = Field(
        default=1800.0,
        gt=0,
        le=7 * 24 * 3600.0,
        description="How long a playbook's scale request floors its pool, from the request",
    )
    kube_config: Path | None = Field(
        default=None, description="kubeconfig file (default: in-cluster, else ~/.kube/config)"
    )
    docker_url: str | None = Field(
        default=None,
        description="Docker Engine API URL, e.g. unix:///run/podman/podman.sock (default: "
        "DOCKER_HOST or the local socket)",
    )
