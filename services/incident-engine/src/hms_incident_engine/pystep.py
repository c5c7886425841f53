"""``python -m hms_incident_engine.pystep module:function``: a playbook's python step, in a child
process of its own (so its timeout can kill it). The function receives the playbook's validated
parameters as keyword arguments (from ``HMS_STEP_PARAMS``); what it returns is printed; an
exception fails the step (exit status 1)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or ":" not in args[0]:
        print("usage: python -m hms_incident_engine.pystep module:function", file=sys.stderr)
        return 2
    module_name, function_name = args[0].split(":", 1)
    function = getattr(importlib.import_module(module_name), function_name)
    params = json.loads(os.environ.get("HMS_STEP_PARAMS", "{}"))
    result = function(**params)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    if result is not None:
        print(result)
    return 0


async def _wait(awaitable: object) -> object:
    return await awaitable  # type: ignore[misc]


if __name__ == "__main__":
    raise SystemExit(main())
