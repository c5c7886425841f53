"""Waiting for a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    interval: float = ...,
    *,
    message: str = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = ...,
    interval: float = ...,
    *,
    message: str = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str = "",
) -> Any:
    """Call ``predicate`` (sync or async) until it returns something truthy; return that.

    A predicate that returns ``X | None`` gives an ``X``: the value is never None once truthy.

    On timeout, raise ``AssertionError`` naming what was awaited, the last value seen and the
    last exception the predicate raised, so a failing test says why it failed.
    """
    what = message or getattr(predicate, "__qualname__", repr(predicate))
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last, error = value, None
        except (AssertionError, Exception) as exc:  # keep trying; report the last one
            error = exc
        if time.monotonic() >= deadline:
            detail = f"last value {last!r}" if error is None else f"last error {error!r}"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {detail}")
        await asyncio.sleep(interval)
