"""``hms-ops scale status`` against a provisioned stack and the autoscaler under its own
least-privilege NATS user: every pool with its backlog, workers and why, from the leader, or
from the SCALE stream when no leader answers; invalid policies are refused with their messages
and nothing is written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hms_autoscaler.app import create_service
from hms_autoscaler.settings import AutoscalerSettings
from hms_ops.state import StatePaths, read_credentials, read_stack_file
from hms_testing import running, wait_until
from hms_testing.stacks import hms_ops_in, provisioned_state

pytestmark = pytest.mark.slow

POLICY = """\
kind: scale_policy
namespace: ssa
name: ssa_re_score
min: 0
max: 5
poll_interval: 0.5s
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatePaths]:
    with provisioned_state(Path(tmp_path_factory.mktemp("scale")) / "state") as paths:
        yield paths


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("min: 0\nmax: 5", "min 9 is more than max 5"),
        ("poll_interval: 0.5s", "backend 'nomad' is unknown; expected one of local, docker"),
        ("max: 5", "triggers.0.series"),
    ],
)
def test_an_invalid_policy_is_refused_with_its_message_and_nothing_written(
    stack: StatePaths, tmp_path: Path, change: str, message: str
) -> None:
    bad = {
        "min: 0\nmax: 5": "min: 9\nmax: 5",
        "poll_interval: 0.5s": "poll_interval: 0.5s\nbackend: nomad",
        "max: 5": "max: 5\ntriggers:\n  - {series: 'gateway 5xx', threshold: 5}",
    }[change]
    path = tmp_path / "bad.yaml"
    path.write_text(POLICY.replace("ssa_re_score", "bad").replace(change, bad))
    done = hms_ops_in(stack, "apply", "-f", str(path))
    assert done.returncode == 1, done.stdout
    assert message in done.stderr
    assert str(path) in done.stderr
    listed = hms_ops_in(stack, "get", "scale_policy", "-n", "ssa", "-o", "json")
    assert "bad" not in listed.stdout


async def test_scale_status_explains_every_pool_from_the_leader_then_from_the_stream(
    stack: StatePaths, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    done = await asyncio.to_thread(hms_ops_in, stack, "apply", "-f", str(path))
    assert done.returncode == 0, done.stderr
    stack_file = read_stack_file(stack)
    assert stack_file is not None
    settings = AutoscalerSettings(
        nats_url=stack_file["nats_url"],
        nats_user="hms-autoscaler",
        nats_password=read_credentials(stack)["autoscaler"],  # type: ignore[arg-type]
        state_dir=tmp_path / "autoscaler",
        heartbeat_interval_s=60,
    )
    service = create_service(settings)
    async with running(service):
        await wait_until(lambda: service.leader, timeout=20, message="the autoscaler leads")

        async def answered() -> dict[str, Any] | None:
            done = await asyncio.to_thread(hms_ops_in, stack, "scale", "status", "--json")
            assert done.returncode == 0, done.stderr
            found: dict[str, Any] = json.loads(done.stdout)
            return found if found["pools"] else None

        status = await wait_until(answered, timeout=30, message="a pool in scale status")
        assert str(status["source"]).startswith("autoscaler ")
        [pool] = status["pools"]
        assert pool["pool"] == "ssa.ssa_re_score"
        assert (pool["workers"], pool["backlog"], pool["degraded"]) == (0, 0, False)
        assert "inactive (backlog 0 <= 0); staying at 0" in pool["last"]["reason"]
        text = await asyncio.to_thread(hms_ops_in, stack, "scale", "status")
        assert "ssa.ssa_re_score  [local]  workers 0  backlog 0  min 0 max 5  ok" in text.stdout
        assert "now: inactive" in text.stdout
    text = await asyncio.to_thread(hms_ops_in, stack, "scale", "status")
    assert text.returncode == 0, text.stderr
    assert "from the SCALE stream (no autoscaler leader answered)" in text.stdout
    assert "ssa.ssa_re_score  [local]  workers 0" in text.stdout
