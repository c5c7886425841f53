"""Python tasks for worker-pool tests and benchmarks: runs that fan out, items that record.

A worker-pool subprocess imports them by name (``python: hms_testing.jobtasks:fan_out``). What
they do is set by the worker's environment (the test starts the worker with it):
``HMS_TEST_ITEMS`` items to enqueue, ``HMS_TEST_RECORD`` a file each item appends its index to,
``HMS_TEST_FAIL_ITEM`` an index that always fails.
"""

from __future__ import annotations

import os
from typing import Any

ITEMS = "HMS_TEST_ITEMS"
RECORD = "HMS_TEST_RECORD"
FAIL_ITEM = "HMS_TEST_FAIL_ITEM"


async def fan_out(ctx: Any) -> None:
    """The run enqueues ``HMS_TEST_ITEMS`` items (in chunks, as a real splitter would); each
    item appends its index to ``HMS_TEST_RECORD`` and fails if it is ``HMS_TEST_FAIL_ITEM``."""
    if ctx.is_item:
        if str(ctx.index) == os.environ.get(FAIL_ITEM):
            raise RuntimeError(f"item {ctx.index} is poison")
        record = os.environ.get(RECORD)
        if record:  # a test's tally; a small blocking append is fine here
            with open(record, "a", encoding="utf-8") as out:  # noqa: ASYNC230
                out.write(f"{ctx.index}\n")
        return
    total = int(os.environ.get(ITEMS, "10"))
    for start in range(0, total, 1000):
        await ctx.enqueue({"shard": i} for i in range(start, min(start + 1000, total)))


def fan_out_blocking(ctx: Any) -> None:
    """:func:`fan_out` as a plain function (run in a thread): enqueues with the blocking call."""
    if ctx.is_item:
        record = os.environ.get(RECORD)
        if record:
            with open(record, "a", encoding="utf-8") as out:
                out.write(f"{ctx.index}\n")
        return
    ctx.enqueue_blocking({"shard": i} for i in range(int(os.environ.get(ITEMS, "10"))))


async def noop(ctx: Any) -> None:
    """Does nothing: the per-item cost of the worker-pool itself."""


async def slow_fan_out(ctx: Any) -> None:
    """:func:`fan_out` whose items take ``HMS_TEST_ITEM_S`` seconds each."""
    import asyncio

    if ctx.is_item:
        await asyncio.sleep(float(os.environ.get("HMS_TEST_ITEM_S", "0.02")))
    await fan_out(ctx)
