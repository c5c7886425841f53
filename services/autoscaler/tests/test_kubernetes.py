"""The kubernetes backend against the Deployment scale subresource's recorded exchanges,
replayed in order by a real local HTTP server (no API server can run here): it reads
``spec.replicas``, scales with a JSON merge patch under its field manager, and turns a missing
Deployment or a refused patch into an error that names the Deployment and the API's reason."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hms_autoscaler.kubernetes import KubernetesDeployments
from hms_autoscaler.ports import BackendError
from hms_autoscaler.scaling import Autoscaler
from hms_contracts import specs, subjects
from hms_contracts.config import ScalePolicy
from hms_kit import SystemClock, ensure_consumer, ensure_stream
from lightkube import KubeConfig
from nats.aio.client import Client
from nats.js import JetStreamContext

RECORDED = json.loads((Path(__file__).parent / "contracts" / "kubernetes_scale.json").read_text())


class Replay:
    """Answers each request with the next recorded response, if it is the recorded request."""

    def __init__(self, exchanges: list[dict[str, Any]]) -> None:
        self.exchanges = list(exchanges)
        self.mismatches: list[str] = []

    async def answer(self, request: web.Request) -> web.Response:
        if not self.exchanges:
            self.mismatches.append(f"unexpected {request.method} {request.path}")
            return web.json_response({"message": "no more recorded exchanges"}, status=400)
        exchange = self.exchanges.pop(0)
        expected, recorded = exchange["request"], exchange["response"]
        if request.headers.get("Authorization") != "Bearer recorded-token":
            self.mismatches.append(f"no bearer token on {request.method} {request.path}")
        got: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
        }
        if "content_type" in expected:
            body = await request.read()
            got["content_type"] = request.content_type
            got["body"] = json.loads(body) if body else None
        if got != expected:
            self.mismatches.append(f"expected {expected}, got {got}")
            return web.json_response({"message": "request differs from the record"}, status=400)
        return web.Response(
            body=json.dumps(recorded["body"]).encode(),
            status=recorded["status"],
            headers={"Content-Type": recorded["content_type"]},
        )

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


def kubeconfig(url: str) -> KubeConfig:
    """A kubeconfig for the replay server: a cluster at its URL and a service account token."""
    return KubeConfig.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "replay", "cluster": {"server": url}}],
            "users": [{"name": "autoscaler", "user": {"token": "recorded-token"}}],
            "contexts": [
                {"name": "replay", "context": {"cluster": "replay", "user": "autoscaler"}}
            ],
            "current-context": "replay",
        }
    )


def policy(deployment: str = "ssa-worker", namespace: str = "ssa", top: int = 10) -> ScalePolicy:
    return ScalePolicy.model_validate(
        {
            "namespace": "ssa",
            "name": "ssa_re_score",
            "max": top,
            "backend": "kubernetes",
            "kubernetes": {"deployment": deployment, "namespace": namespace},
        }
    )


@asynccontextmanager
async def backend_for(scenario: str) -> AsyncIterator[tuple[KubernetesDeployments, Replay]]:
    replay = Replay(RECORDED["scenarios"][scenario])
    async with replay.serving() as url:
        backend = KubernetesDeployments(kubeconfig(url))
        try:
            yield backend, replay
        finally:
            await backend.close()
    assert replay.mismatches == []
    assert replay.exchanges == [], "every recorded exchange was made"


async def test_it_reads_the_replicas_and_scales_with_a_merge_patch() -> None:
    async with backend_for("read_then_scale") as (backend, _):
        assert await backend.workers(policy()) == 2
        await backend.scale(policy(), 5)
        assert await backend.workers(policy()) == 5


async def test_a_missing_deployment_is_an_error_naming_it() -> None:
    async with backend_for("missing_deployment") as (backend, _):
        with pytest.raises(BackendError) as caught:
            await backend.workers(policy("nope"))
    assert str(caught.value) == (
        "deployment ssa/nope: cannot read its scale: 404 NotFound: "
        'deployments.apps "nope" not found'
    )


async def test_a_refused_patch_is_an_error_with_the_reason() -> None:
    async with backend_for("forbidden_patch") as (backend, _):
        with pytest.raises(BackendError) as caught:
            await backend.scale(policy(namespace="locked"), 0)
    assert "deployment locked/ssa-worker: cannot scale its scale: 403 Forbidden" in str(
        caught.value
    )
    assert 'cannot patch resource "deployments/scale"' in str(caught.value)


async def test_a_request_unlike_the_record_fails_the_replay() -> None:
    replay = Replay(RECORDED["scenarios"]["read_then_scale"][1:2])
    async with replay.serving() as url:
        backend = KubernetesDeployments(kubeconfig(url))
        with pytest.raises(BackendError):
            await backend.scale(policy(), 4)  # the record says 5
        await backend.close()
    assert replay.mismatches, "a different body is caught"


async def test_without_any_configuration_the_backend_says_so() -> None:
    backend = KubernetesDeployments(kube_config=Path("/nonexistent/kubeconfig"))
    with pytest.raises(BackendError, match="kubernetes is not configured"):
        await backend.workers(policy())


async def test_the_autoscaler_scales_a_deployment_from_a_real_backlog(
    js: JetStreamContext, nc: Client
) -> None:
    await ensure_stream(js, specs.JOB_RUNS)
    await ensure_stream(js, specs.SCALE)
    await ensure_consumer(js, specs.WORKER_RUNS)
    for i in range(100):
        await js.publish(
            subjects.JOB_RUN.subject("ssa", "q"), b"{}", headers={"Nats-Msg-Id": f"m{i}"}
        )
    replay = Replay(RECORDED["scenarios"]["read_then_scale"][:2])
    async with replay.serving() as url:
        backend = KubernetesDeployments(kubeconfig(url))
        scaler = Autoscaler(nc, lambda: [policy(top=5)], {"kubernetes": backend}, SystemClock())
        scaler.tick_policies()
        [pool] = scaler.pools.values()
        event = await scaler.decide(pool)
        await backend.close()
    assert replay.mismatches == []
    assert (event.current, event.desired, event.backlog) == (2, 5, 100)
    assert event.action == "scale_up"
    assert "backlog 100 / 10 per worker = 10; clamped to 5 (min 0, max 5)" in event.reason
