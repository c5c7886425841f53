"""``/healthz`` and Prometheus ``/metrics`` over HTTP, one small server per service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthProbe = Callable[[], tuple[bool, dict[str, Any]]]
Page = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A handler mounted under a path prefix (see :meth:`HealthServer.mount`)."""


class HealthServer:
    """Serves ``/healthz`` (200 when healthy, also when degraded; 503 otherwise) and
    ``/metrics``. A probe's ``degraded`` detail (reasons by component) makes the status
    ``degraded``: the service works, with reduced ability."""

    def __init__(self, registry: CollectorRegistry, probe: HealthProbe) -> None:
        self.registry = registry
        self.probe = probe
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.host = ""
        self._mounts: dict[str, Page] = {}

    def mount(self, prefix: str, page: Page) -> None:
        """Serve every request under ``prefix`` (e.g. ``/escalation/``) with ``page``, which
        routes the rest itself; possible before or after the server started (a service's
        resources open after it), so a service adds its own pages beside /healthz."""
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start and end with '/'")
        self._mounts[prefix] = page

    def unmount(self, prefix: str) -> None:
        self._mounts.pop(prefix, None)

    async def _mounted(self, request: web.Request) -> web.StreamResponse:
        for prefix, page in self._mounts.items():
            if request.path.startswith(prefix):
                return await page(request)
        raise web.HTTPNotFound()

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
        app.router.add_route("*", "/{rest:.*}", self._mounted)  # the pages services mount
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
