"""The work the test pools' workers do: a short wait, then the run id written down once it is
done (a run interrupted by a drain writes nothing, so the file counts completed runs)."""

from __future__ import annotations

import asyncio
import os
from typing import Any


async def work(ctx: Any) -> None:
    await asyncio.sleep(float(os.environ.get("SCALE_TEST_WORK_S", "0.02")))
    with open(os.environ["SCALE_TEST_DONE"], "a") as done:
        done.write(f"{ctx.namespace} {ctx.run_id}\n")
