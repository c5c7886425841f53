"""The docker backend: a pool's workers are containers, created and removed through the Docker
Engine API (aiodocker; Docker or podman's Docker-compatible service).

Each worker container is labelled ``hms.autoscaler.pool=<ns>.<pool>``, so the labels are the
state: a restarted autoscaler counts (adopts) the containers of each pool by listing them. A
container is stopped by draining: ``stop`` sends SIGTERM and waits ``stop_timeout_s`` before
SIGKILL, then it is removed. Containers get explicit ulimits (rootless engines cannot always
inherit the host's) and the worker's settings as environment variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from aiodocker import Docker, DockerError
from hms_contracts.config import ScalePolicy

from .ports import BackendError

log = logging.getLogger(__name__)

POOL_LABEL = "hms.autoscaler.pool"
MANAGED_LABEL = "hms.autoscaler.managed"
#: open files of a worker container (explicit: a rootless engine may refuse the host's limit)
NOFILE = 4096
NPROC = 4096
LIVE_STATES = ("created", "running", "restarting", "paused")


class DockerWorkers:
    """Worker containers of every pool, by label."""

    name = "docker"

    def __init__(
        self,
        url: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout_s: int = 30,
    ) -> None:
        self.url = url
        self.env = dict(env or {})
        self.stop_timeout_s = stop_timeout_s
        self._docker: Docker | None = None
        self._stopping: set[str] = set()
        self._drains: set[asyncio.Task[None]] = set()

    def docker(self) -> Docker:
        if self._docker is None:
            try:
                self._docker = Docker(url=self.url)
            except Exception as exc:  # no socket, no DOCKER_HOST
                raise BackendError(f"no container engine reachable: {exc}") from None
        return self._docker

    async def adopt(self) -> None:
        return None  # the labels are the state: workers() lists them

    async def _containers(self, policy: ScalePolicy) -> list[Any]:
        label = f"{POOL_LABEL}={policy.pool_id}"
        try:
            found = await self.docker().containers.list(all=True, filters={"label": [label]})
        except BackendError:
            raise
        except (DockerError, OSError) as exc:
            raise BackendError(f"pool {policy.pool_id}: cannot list containers: {exc}") from None
        # exited and dead containers are not workers (the status filter differs across engines)
        live = [c for c in found if c._container.get("State") in LIVE_STATES]
        return [c for c in live if c.id not in self._stopping]

    async def workers(self, policy: ScalePolicy) -> int:
        return len(await self._containers(policy))

    async def scale(self, policy: ScalePolicy, desired: int) -> None:
        running = await self._containers(policy)
        if desired > len(running):
            for _ in range(desired - len(running)):
                await self._start(policy)
        elif desired < len(running):
            # the newest first, as the local backend does
            newest = sorted(running, key=lambda c: c._container.get("Created", 0), reverse=True)
            for container in newest[: len(running) - desired]:
                self._drain(policy, container)

    def container_config(self, policy: ScalePolicy, instance_id: str) -> dict[str, Any]:
        """What ``POST /containers/create`` is sent for one worker of the pool."""
        target = policy.docker
        if target is None:
            raise BackendError(f"pool {policy.pool_id}: no docker image named")
        env = dict(self.env)
        env["HMS_WORKER_POOL_INSTANCE_ID"] = instance_id
        if policy.worker_concurrency is not None:
            env["HMS_WORKER_POOL_CONCURRENCY"] = str(policy.worker_concurrency)
        host: dict[str, Any] = {
            "Ulimits": [
                {"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE},
                {"Name": "nproc", "Soft": NPROC, "Hard": NPROC},
            ],
            "RestartPolicy": {"Name": "no"},
        }
        if target.network is not None:
            host["NetworkMode"] = target.network
        return {
            "Image": target.image,
            "Env": [f"{k}={v}" for k, v in sorted(env.items())],
            "Labels": {POOL_LABEL: policy.pool_id, MANAGED_LABEL: "true"},
            "StopSignal": "SIGTERM",
            "StopTimeout": self.stop_timeout_s,
            "HostConfig": host,
        }

    async def _start(self, policy: ScalePolicy) -> None:
        instance_id = f"{policy.name[:40]}-{secrets.token_hex(4)}"
        name = f"hms-{policy.namespace}-{instance_id}".replace("_", "-")
        try:
            container = await self.docker().containers.create(
                self.container_config(policy, instance_id), name=name
            )
            await container.start()
        except BackendError:
            raise
        except (DockerError, OSError) as exc:
            raise BackendError(f"pool {policy.pool_id}: cannot start a container: {exc}") from None
        log.info("pool %s: started container %s", policy.pool_id, name)

    def _drain(self, policy: ScalePolicy, container: Any) -> None:
        self._stopping.add(container.id)
        task = asyncio.ensure_future(self._stop(policy, container))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _stop(self, policy: ScalePolicy, container: Any) -> None:
        try:
            await container.stop(t=self.stop_timeout_s, timeout=self.stop_timeout_s + 30)
            await container.delete(force=True)
            log.info("pool %s: drained and removed container %s", policy.pool_id, container.id)
        except (TimeoutError, DockerError, OSError) as exc:
            log.error(
                "pool %s: stopping container %s failed: %s", policy.pool_id, container.id, exc
            )
        finally:
            self._stopping.discard(container.id)

    async def close(self) -> None:
        for task in list(self._drains):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 1.0)
        if self._docker is not None:
            await self._docker.close()
            self._docker = None
