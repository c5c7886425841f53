"""``/healthz`` and Prometheus ``/metrics`` over HTTP, one small server per service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthProbe = Callable[[], tuple[bool, dict[str, Any]]]
Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
"""``(method, path, handler)``: an endpoint a service adds to its HTTP server."""


class HealthServer:
    """Serves ``/healthz`` (200 when healthy, also when degraded; 503 otherwise) and
    ``/metrics``. A probe's ``degraded`` detail (reasons by component) makes the status
    ``degraded``: the service works, with reduced ability."""

    def __init__(
        self, registry: CollectorRegistry, probe: HealthProbe, routes: Sequence[Route] = ()
    ) -> None:
        self.registry = registry
        self.probe = probe
        self.routes = tuple(routes)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.host = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _healthz(self, _: web.Request) -> web.Response:
        ok, detail = self.probe()
        # degraded: some part works with reduced ability (200) or not at all (503)
        status = "degraded" if detail.get("degraded") else ("ok" if ok else "unhealthy")
        return web.Response(
            status=200 if ok else 503,
            text=json.dumps({"status": status, **detail}, default=str),
            content_type="application/json",
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        # rendering walks every collector: keep it off the event loop
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.host = host
        self.port = int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
