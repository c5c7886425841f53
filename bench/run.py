"""Run the benchmarks against one nats-server: ``python bench/run.py [--quick] [names...]``.

Discovers ``bench/bench_*.py``; each module has ``async def run(ctx) -> list[dict]``. The raw NATS
baselines always run first, because every other bench prints its figure beside them. Figures go to
stdout as JSON lines, logs to stderr. Exits 1 if any bench raised, 2 on an unknown bench name.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hms_kit.logs import configure_logging
from hms_stack.natsserver import NatsServer

from bench._common import BenchContext, Record

log = logging.getLogger("bench.run")

BENCH_DIR = Path(__file__).resolve().parent
BASELINE = "nats_baseline"

BenchFn = Callable[[BenchContext], Awaitable[list[Record]]]


def discover() -> list[str]:
    """Bench names (``bench_<name>.py``), the baseline first, the rest alphabetical."""
    names = sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))
    return [BASELINE] + [n for n in names if n != BASELINE]


def select(available: list[str], wanted: list[str]) -> list[str]:
    """The benches to run in order; the baseline is always included."""
    wanted = [w.removeprefix("bench_").removesuffix(".py") for w in wanted]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise SystemExit(f"unknown bench {', '.join(unknown)}; have: {', '.join(available)}")
    if not wanted:
        return available
    return [n for n in available if n == BASELINE or n in wanted]


def load(name: str) -> BenchFn:
    module = importlib.import_module(f"bench.bench_{name}")
    return cast(BenchFn, module.run)


async def run_all(ctx: BenchContext, names: list[str]) -> list[str]:
    """Run each bench; return the names of those that raised."""
    failed: list[str] = []
    for name in names:
        started = time.monotonic()
        log.info("bench %s: start", name)
        try:
            records = await load(name)(ctx)
        except Exception:
            log.exception("bench %s: failed", name)
            failed.append(name)
            continue
        log.info("bench %s: %d figures in %.1f s", name, len(records), time.monotonic() - started)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "names", nargs="*", help="benches to run (default: all); e.g. nats_baseline"
    )
    parser.add_argument("--quick", action="store_true", help="small counts, 3 repetitions (CI)")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per figure")
    parser.add_argument(
        "--no-sync-always",
        action="store_true",
        help="JetStream without sync_interval=always (default fsync policy); marked sync=default",
    )
    parser.add_argument("--list", action="store_true", help="print bench names and exit")
    args = parser.parse_args(argv)
    configure_logging("bench", "run")

    available = discover()
    if args.list:
        for name in available:
            print(name)
        return 0
    try:
        names = select(available, args.names)
    except SystemExit as exc:
        log.error("%s", exc)
        return 2

    repeats = args.repeats or (3 if args.quick else 5)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hms-bench-") as tmp:
        srv = NatsServer(store_dir=Path(tmp), name="bench", sync_always=not args.no_sync_always)
        srv.start()
        try:
            ctx = BenchContext(
                url=srv.url, quick=args.quick, sync_always=srv.sync_always, repeats=repeats
            )
            log.info("nats-server on %s, sync=%s, repeats=%d", srv.url, ctx.sync, repeats)
            failed = asyncio.run(run_all(ctx, names))
        finally:
            srv.stop()
    log.info("run finished in %.1f s", time.monotonic() - started)
    if failed:
        log.error("failed benches: %s", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
