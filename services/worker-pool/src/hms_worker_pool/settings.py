"""Settings of the worker-pool service (environment prefix ``HMS_WORKER_POOL_``)."""

from __future__ import annotations

from hms_contracts import specs
from hms_kit import ServiceSettings, settings_config
from pydantic import Field

from .core import SERVICE


class WorkerPoolSettings(ServiceSettings):
    """Everything the worker-pool reads from its environment."""

    model_config = settings_config(SERVICE)

    concurrency: int = Field(default=4, ge=1, le=256, description="Runs one process works at once")
    kill_grace_s: float = Field(
        default=5.0, gt=0, description="After SIGTERM to a timed-out command's group, until SIGKILL"
    )
    container_engine: str | None = Field(
        default=None,
        description="Docker Engine API URL for image tasks, e.g. unix:///run/podman/podman.sock "
        "(podman system service) or unix:///var/run/docker.sock; unset: image runs fail, saying so",
    )
    items_fetch: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Item batches (up to 100 items each) one puller fetches at once; a pause "
        "of their queue is seen between fetches",
    )
    ack_wait_s: float | None = Field(
        default=None,
        gt=0,
        description="Consumer ack wait, without server backoff (default: the spec's wait and "
        "backoff)",
    )

    def consumer(self) -> specs.ConsumerSpec:
        """The ``worker_pool`` durable as this deployment provisions it.

        With ``ack_wait_s`` the consumer has no server-side backoff: JetStream measures a nak's
        delay from the ack wait and then adds the backoff step of that delivery, which would
        stretch the job's own retry delays; the worker states each delay in its nak instead.
        """
        if self.ack_wait_s is None:
            return specs.WORKER_RUNS
        return specs.WORKER_RUNS.model_copy(update={"ack_wait_s": self.ack_wait_s, "backoff_s": ()})

    def items_consumer(self) -> specs.ConsumerSpec:
        """The ``worker_pool_items`` durable, with ``ack_wait_s`` as :meth:`consumer` has it."""
        if self.ack_wait_s is None:
            return specs.WORKER_ITEMS
        return specs.WORKER_ITEMS.model_copy(
            update={"ack_wait_s": self.ack_wait_s, "backoff_s": ()}
        )
