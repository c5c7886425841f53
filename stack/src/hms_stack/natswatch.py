"""Keeps the stack's nats-server alive and truthful: restarts it when it dies, hangs, or reports
JetStream unhealthy for too long.

A full disk wedges a stream: its write fails once ("critical write error") and it accepts no
write again, even once there is room, until the server restarts. The server's plain
``/healthz`` reports such a stream (``?js-enabled-only=true`` does not), so that is what we ask.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from .errors import NatsServerError
from .natsserver import NatsServer

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5


async def nats_health(session: aiohttp.ClientSession, monitor_url: str) -> str | None:
    """None when the server says it, JetStream and every stream are healthy, else what is wrong."""
    try:
        async with session.get(
            monitor_url + "/healthz", timeout=aiohttp.ClientTimeout(total=1.0)
        ) as resp:
            if resp.status == 200:
                return None
            return f"its /healthz answered {resp.status}: {(await resp.text())[:200].strip()}"
    except TimeoutError:
        return "its /healthz did not answer within 1s"
    except (aiohttp.ClientError, OSError) as exc:
        return f"its /healthz is unreachable ({exc})"


class NatsKeeper:
    """Start the server from the calling thread (so it dies with us) and keep it healthy."""

    def __init__(
        self,
        server: NatsServer,
        *,
        unhealthy_after_s: float,
        after_start: Callable[[], Awaitable[None]],
    ) -> None:
        self.server = server
        self.unhealthy_after_s = unhealthy_after_s
        self.after_start = after_start
        self.restarts = 0

    async def start(self, timeout: float = 10.0) -> None:
        self.server.spawn()  # this thread: the server's parent-death signal follows it
        await self.server.wait_ready_async(timeout)

    async def restart(self, timeout: float = 15.0) -> None:
        """kill -9 and start again on the same port and store (the old socket may linger)."""
        await asyncio.to_thread(self.server.kill)
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.start()
                break
            except NatsServerError as exc:
                await asyncio.to_thread(self.server.kill)
                if time.monotonic() > deadline:
                    raise
                log.warning("nats-server did not come back yet (%s); trying again", exc)
                await asyncio.sleep(0.2)
        self.restarts += 1
        log.info("nats-server restarted (pid %s)", self.server.pid)
        await self.after_start()

    async def keep(self) -> None:
        """Run until cancelled."""
        monitor_url = self.server.monitor_url
        bad_since: float | None = None
        async with aiohttp.ClientSession() as session:
            while True:
                await asyncio.sleep(CHECK_EVERY_S)
                if not self.server.running():
                    log.warning("nats-server died; restarting it on the same port and store")
                    await self._restart()
                    bad_since = None
                    continue
                if monitor_url is None:
                    continue
                problem = await nats_health(session, monitor_url)
                now = time.monotonic()
                if problem is None:
                    bad_since = None
                    continue
                bad_since = bad_since or now
                if now - bad_since >= self.unhealthy_after_s:
                    log.warning(
                        "nats-server (pid %s) is unhealthy for %.1fs: %s; restarting it",
                        self.server.pid,
                        now - bad_since,
                        problem,
                    )
                    await self._restart()
                    bad_since = None

    async def _restart(self) -> None:
        try:
            await self.restart()
        except Exception as exc:  # keep trying: the next round sees it down again
            log.error("nats-server could not be restarted: %s; see %s", exc, self.server.log_file)
