"""``just bench`` prints one JSON object per figure, with the raw NATS baselines of the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["bench", "metric", "value", "unit", "baseline", "ratio"]
BASELINES = {
    "core_pubsub",
    "js_publish_async",
    "js_publish_sync",
    "js_pull_fetch100_ack",
    "reqrep_p50",
    "reqrep_p99",
}


@pytest.mark.slow
def test_bench_prints_baselines_and_kit_figures_beside_them_as_json_lines() -> None:
    out = subprocess.run(
        # the harness with two benches (every bench runs in `just check` and `just bench`)
        [sys.executable, "bench/run.py", "--quick", "--repeats", "1", "kit", "sdk"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in out.stdout.splitlines()]
    for record in records:
        assert list(record)[:6] == KEYS
        assert record["value"] > 0
    baselines = {r["metric"]: r for r in records if r["bench"] == "nats_baseline"}
    assert set(baselines) == BASELINES
    kit = [r for r in records if r["bench"] == "kit"]
    assert kit, "the kit's figures are printed"
    for record in kit:
        assert record["baseline"] > 0
        assert record["ratio"] == pytest.approx(record["value"] / record["baseline"], rel=0.01)
    sdk = [r for r in records if r["bench"] == "sdk"]
    assert [r["metric"] for r in sdk] == ["push_samples"]
    assert sdk[0]["unit"] == "samples/s"
    assert sdk[0]["baseline"] > 0
