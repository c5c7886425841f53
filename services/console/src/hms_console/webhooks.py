"""Outbound webhooks: incident and breach events POSTed to registered URLs, signed, retried
with backoff, every attempt in a delivery log (SQLite).

The signature follows the Stripe/Svix form: ``Hms-Signature: t=<unix seconds>,v1=<hex>``
where ``v1`` is HMAC-SHA256 of ``f"{t}.{body}"`` with the webhook's secret. Receivers check
it and the time (to refuse replays), and dedupe by ``Hms-Event-Id``: a delivery may repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
from hms_contracts import BusEvent, IncidentClosed, IncidentOpened, IncidentUpdated, SlaBreached
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Hms-Signature"
DELIVERED_TYPES: tuple[type[BusEvent], ...] = (
    IncidentOpened,
    IncidentUpdated,
    IncidentClosed,
    SlaBreached,
)


class Webhook(BaseModel):
    """A registered receiver (settings: ``HMS_CONSOLE_WEBHOOKS`` as a JSON list)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Name in the log")
    url: HttpUrl = Field(description="Where events are POSTed")
    secret: SecretStr = Field(min_length=16, description="HMAC key shared with the receiver")
    namespaces: tuple[str, ...] = Field(default=("*",), description="Namespaces ('*': all)")

    def wants(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces


def sign(secret: str, body: bytes, at: int) -> str:
    """The ``Hms-Signature`` value of ``body`` sent at unix time ``at``."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the signature matches and is no older than the tolerance."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        at = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, at), header)


def event_type(event: BusEvent) -> str:
    if isinstance(event, SlaBreached):
        return "sla.breach"
    if isinstance(event, IncidentClosed):
        return "incident.closed"
    return f"incident.{event.event_type}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    webhook TEXT NOT NULL,
    event_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    at TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    UNIQUE (webhook, event_id, attempt)
);
CREATE INDEX IF NOT EXISTS deliveries_ns ON deliveries (namespace, at);
"""


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 300.0
    attempts: int = 6

    def delay(self, attempt: int) -> float:
        return min(self.first_s * self.factor ** (attempt - 1), self.max_s)


class Deliveries:
    """Sends each new incident and breach event to every webhook that wants it."""

    def __init__(
        self,
        path: Path,
        hooks: tuple[Webhook, ...],
        *,
        backoff: Backoff = Backoff(),
        backfill_s: float = 600.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.path = path
        self.hooks = hooks
        self.backoff = backoff
        self.backfill_s = backfill_s
        self.timeout_s = timeout_s
        self._db: aiosqlite.Connection | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._db = await aiosqlite.connect(self.path)
        await self._db.executescript(_SCHEMA)
        await self._db.commit()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.close()
        if self._db is not None:
            await self._db.close()

    def offer(self, event: BusEvent) -> None:
        """Called with every projected event: delivers the recent incident/breach ones."""
        if not self.hooks or not isinstance(event, DELIVERED_TYPES):
            return
        if event.occurred_at < datetime.now(UTC) - timedelta(seconds=self.backfill_s):
            return  # replayed history, not news
        for hook in self.hooks:
            if hook.wants(event.namespace):
                task = asyncio.create_task(self._deliver(hook, event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _delivered(self, hook: Webhook, event_id: str) -> bool:
        assert self._db is not None
        async with self._db.execute(
            "SELECT 1 FROM deliveries WHERE webhook = ? AND event_id = ? AND delivered = 1",
            (hook.name, event_id),
        ) as cur:
            return await cur.fetchone() is not None

    async def _log(
        self, hook: Webhook, event: BusEvent, attempt: int, status: int | None, error: str | None
    ) -> None:
        assert self._db is not None
        delivered = int(status is not None and 200 <= status < 300)
        await self._db.execute(
            "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hook.name,
                event.event_id,
                event.namespace,
                event_type(event),
                attempt,
                status,
                error,
                datetime.now(UTC).isoformat(),
                delivered,
            ),
        )
        await self._db.commit()

    async def _deliver(self, hook: Webhook, event: BusEvent) -> None:
        assert self._http is not None
        if await self._delivered(hook, event.event_id):
            return
        body = (
            (
                '{"type":"' + event_type(event) + '","subject":"' + event.subject() + '","data":'
            ).encode()
            + event.model_dump_json().encode()
            + b"}"
        )
        for attempt in range(1, self.backoff.attempts + 1):
            status: int | None = None
            error: str | None = None
            headers = {
                "Content-Type": "application/json",
                "Hms-Event-Id": event.event_id,
                "Hms-Event-Type": event_type(event),
                SIGNATURE_HEADER: sign(hook.secret.get_secret_value(), body, int(time.time())),
            }
            try:
                async with self._http.post(str(hook.url), data=body, headers=headers) as resp:
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            await self._log(hook, event, attempt, status, error)
            if status is not None and 200 <= status < 300:
                return
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                log.warning("webhook %s refused %s with %s", hook.name, event.event_id, status)
                return
            if attempt < self.backoff.attempts:
                await asyncio.sleep(self.backoff.delay(attempt))
        log.warning("webhook %s: gave up on %s", hook.name, event.event_id)

    async def log(self, namespace: str, limit: int = 200) -> list[dict[str, Any]]:
        assert self._db is not None
        async with self._db.execute(
            "SELECT webhook, event_id, event_type, attempt, status, error, at, delivered "
            "FROM deliveries WHERE namespace = ? ORDER BY at DESC LIMIT ?",
            (namespace, limit),
        ) as cur:
            rows = await cur.fetchall()
        keys = ("webhook", "event_id", "event_type", "attempt", "status", "error", "at")
        return [{**dict(zip(keys, r[:7], strict=True)), "delivered": bool(r[7])} for r in rows]


__all__ = ["SIGNATURE_HEADER", "Backoff", "Deliveries", "Webhook", "sign", "verify"]
