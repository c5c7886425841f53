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
    waiting = _Waiting(predicate, timeout, message)
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            waiting.saw(value)
        except (AssertionError, Exception) as exc:  # keep trying; report the last one
            waiting.failed(exc)
        waiting.check()
        await asyncio.sleep(interval)


def wait_for(
    predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "", interval: float = 0.1
) -> T:
    """:func:`wait_until` for synchronous tests (those driving real processes): poll
    ``predicate`` until it returns something truthy, failing the same way on timeout."""
    waiting = _Waiting(predicate, timeout, what)
    while True:
        try:
            value = predicate()
            if value:
                return value
            waiting.saw(value)
        except (AssertionError, Exception) as exc:
            waiting.failed(exc)
        waiting.check()
        time.sleep(interval)


class _Waiting:
    """The deadline and the last thing seen, for a timeout message that says why."""

    def __init__(self, predicate: Callable[[], Any], timeout: float, what: str) -> None:
        self.what = what or getattr(predicate, "__qualname__", repr(predicate))
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.last: object = None
        self.error: BaseException | None = None

    def saw(self, value: object) -> None:
        self.last, self.error = value, None

    def failed(self, exc: BaseException) -> None:
        self.error = exc

    def check(self) -> None:
        if time.monotonic() >= self.deadline:
            detail = (
                f"last value {self.last!r}" if self.error is None else f"last error {self.error!r}"
            )
            raise AssertionError(
                f"timed out after {self.timeout:g} s waiting for {self.what}: {detail}"
            )
