"""The work of the autoscaler bench's items (imported by the worker processes): a short wait."""

from __future__ import annotations

import asyncio
from typing import Any


async def work(ctx: Any) -> None:
    await asyncio.sleep(0.05)
