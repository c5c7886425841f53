"""Connecting to a stack's NATS as its admin user."""

from __future__ import annotations

import nats
from nats.aio.client import Client

from .state import ADMIN_USER


async def _quiet(_: Exception) -> None:
    """Connection errors surface as exceptions; nats-py's default would print tracebacks."""


async def admin_connect(url: str, password: str) -> Client:
    """Connect as the stack's admin user (provisioning, status)."""
    return await nats.connect(
        url,
        user=ADMIN_USER,
        password=password,
        name="hms-ops-cli",
        max_reconnect_attempts=3,
        connect_timeout=2,
        error_cb=_quiet,
    )
