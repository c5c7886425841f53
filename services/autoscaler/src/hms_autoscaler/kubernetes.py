"""The kubernetes backend: a pool's workers are the pods of a Deployment, scaled through its
``scale`` subresource (``autoscaling/v1`` Scale), as the HPA and ``kubectl scale`` do.

Reading: ``GET /apis/apps/v1/namespaces/<ns>/deployments/<name>/scale``, the current count
being ``spec.replicas``. Scaling: ``PATCH`` of the same path with the JSON merge patch
``{"spec": {"replicas": N}}``. The client is lightkube's ``AsyncClient``, configured from
``HMS_AUTOSCALER_KUBE_CONFIG`` or, by default, in-cluster then ``~/.kube/config``. Draining is
the Deployment's: Kubernetes sends SIGTERM to the pods it removes and waits for their grace
period. Nothing to adopt: the Deployment holds the count.

No API server can run in this project's tests: the backend is tested against the subresource's
recorded request/response exchanges, replayed by a real local HTTP server
(``tests/contracts/kubernetes_scale.json``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hms_contracts.config import ScalePolicy
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from .ports import BackendError

log = logging.getLogger(__name__)

FIELD_MANAGER = "hms-autoscaler"


class KubernetesDeployments:
    """Deployments scaled through their ``scale`` subresource."""

    name = "kubernetes"

    def __init__(self, config: KubeConfig | None = None, *, kube_config: Path | None = None):
        self.config = config
        self.kube_config = kube_config
        self._client: AsyncClient | None = None

    def client(self) -> AsyncClient:
        if self._client is None:
            try:
                config = self.config
                if config is None and self.kube_config is not None:
                    config = KubeConfig.from_file(self.kube_config)
                self._client = AsyncClient(config, field_manager=FIELD_MANAGER)
            except Exception as exc:  # no in-cluster account, no kubeconfig
                raise BackendError(f"kubernetes is not configured: {exc}") from None
        return self._client

    async def adopt(self) -> None:
        return None

    @staticmethod
    def _target(policy: ScalePolicy) -> tuple[str, str]:
        target = policy.kubernetes
        if target is None:
            raise BackendError(f"pool {policy.pool_id}: no kubernetes deployment named")
        return target.deployment, target.namespace

    async def workers(self, policy: ScalePolicy) -> int:
        name, namespace = self._target(policy)
        try:
            scale: Any = await self.client().get(Deployment.Scale, name, namespace=namespace)
        except ApiError as exc:
            raise BackendError(_api_error("read", namespace, name, exc)) from None
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"deployment {namespace}/{name}: cannot read scale: {exc}") from None
        return int(scale.spec.replicas or 0) if scale.spec is not None else 0

    async def scale(self, policy: ScalePolicy, desired: int) -> None:
        name, namespace = self._target(policy)
        patch = {"spec": {"replicas": desired}}
        try:
            await self.client().patch(
                Deployment.Scale, name, patch, namespace=namespace, patch_type=PatchType.MERGE
            )
        except ApiError as exc:
            raise BackendError(_api_error("scale", namespace, name, exc)) from None
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"deployment {namespace}/{name}: cannot scale: {exc}") from None
        log.info("deployment %s/%s scaled to %d", namespace, name, desired)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _api_error(what: str, namespace: str, name: str, exc: ApiError) -> str:
    status = exc.status
    return (
        f"deployment {namespace}/{name}: cannot {what} its scale: "
        f"{status.code} {status.reason}: {status.message}"
    )
