"""Serves the ASGI app with uvicorn inside the service's event loop (the kit owns signals)."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from .errors import ConsoleError

log = logging.getLogger(__name__)


class ApiServer:
    """uvicorn bound once at start, stopped gracefully with the service."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=2,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(self.config)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        try:
            await self.server.startup()
        except SystemExit:  # uvicorn exits on a bind error; the service should say why and stop
            raise ConsoleError(
                f"cannot serve the console on {self.host}:{self.port} (in use, or not an "
                "address of this machine): set HMS_CONSOLE_API_PORT / --console-port"
            ) from None
        if self.server.servers and self.server.servers[0].sockets:
            self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.server.started = True
        log.info("console API and dashboard on %s", self.url)

    async def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True
        await self.server.shutdown()
