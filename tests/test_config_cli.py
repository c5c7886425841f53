"""``hms-ops apply | get | delete | history`` against a stack's NATS, as a user runs them.

Every command is a real ``python -m hms_ops`` process finding the stack through its state
folder (stack.json and the admin's credentials), as after ``hms-ops up``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hms_contracts import specs
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect
from hms_stack.state import load_credentials
from hms_testing.stacks import hms_ops_in, provisioned_state

NS = "usds_unemployment"

GOOD = """\
kind: metric
namespace: usds_unemployment
name: api.latency_p99
unit: ms
---
kind: alert
namespace: usds_unemployment
name: slow
metric: api.latency_p99
condition: "> 1000"
window: 5m
playbook: rollback
---
kind: playbook
namespace: usds_unemployment
name: rollback
steps:
  - kubectl rollout undo deploy/benefits-api
  - notify oncall 'Rollback complete'
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatePaths]:
    """A stack's NATS with its state folder, provisioned by the admin (no services)."""
    with provisioned_state(Path(tmp_path_factory.mktemp("cli")) / "state") as paths:
        yield paths


@pytest.fixture
def namespace(stack: StatePaths, request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test: tests share the server, not their objects."""
    return f"t{abs(hash(request.node.name)) % 10**8}"


def hms_ops(stack: StatePaths, *args: str) -> subprocess.CompletedProcess[str]:
    return hms_ops_in(stack, *args)


def write(tmp_path: Path, name: str, text: str, namespace: str) -> Path:
    path = tmp_path / name
    path.write_text(text.replace(NS, namespace))
    return path


async def audited(stack: StatePaths, namespace: str) -> list[dict[str, object]]:
    """The ConfigChanged events of a namespace, in order."""
    nc = await admin_connect(
        json.loads(stack.stack_file.read_text())["nats_url"], load_credentials(stack)[ADMIN_USER]
    )
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"ops.config.{namespace}.>", ordered_consumer=True)
        events = []
        try:
            while True:
                msg = await sub.next_msg(timeout=0.5)
                events.append(json.loads(msg.data))
        except TimeoutError:  # nothing more
            pass
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


def test_apply_get_delete_and_history_round_trip(
    stack: StatePaths, namespace: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "app.yaml", GOOD, namespace)
    applied = hms_ops(stack, "apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    assert f"{namespace}.alert.slow created (generation 1)" in applied.stdout

    got = hms_ops(stack, "get", "alert", "slow", "-n", namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["condition"] == "> 1000"
    listed = hms_ops(stack, "get", "playbook", "-n", namespace)
    [playbook] = list(yaml.safe_load_all(listed.stdout))
    assert playbook["kind"] == "playbook"
    assert playbook["steps"][0]["argv"] == ["kubectl", "rollout", "undo", "deploy/benefits-api"]

    changed = write(tmp_path, "app.yaml", GOOD.replace("> 1000", "> 2000"), namespace)
    assert "alert.slow updated (generation 2)" in hms_ops(stack, "apply", "-f", str(changed)).stdout
    history = hms_ops(stack, "history", "alert", "slow", "-n", namespace, "-o", "json")
    versions = json.loads(history.stdout)
    assert [v["object"]["condition"] for v in versions] == ["> 1000", "> 2000"]
    assert {v["author"] for v in versions} == {ADMIN_USER}

    deleted = hms_ops(stack, "delete", "alert", "slow", "-n", namespace)
    assert deleted.stdout.strip() == f"{namespace}.alert.slow deleted"
    missing = hms_ops(stack, "get", "alert", "slow", "-n", namespace)
    assert missing.returncode == 1
    assert "no alert 'slow'" in missing.stderr

    events = asyncio.run(audited(stack, namespace))
    assert [(e["kind"], e["action"], e["generation"]) for e in events] == [
        ("metric", "applied", 1),
        ("alert", "applied", 1),
        ("playbook", "applied", 1),
        ("alert", "applied", 2),
        ("alert", "deleted", 2),
    ]


def test_applying_the_same_file_twice_writes_nothing_the_second_time(
    stack: StatePaths, namespace: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "app.yaml", GOOD, namespace)
    assert hms_ops(stack, "apply", "-f", str(path)).returncode == 0
    again = hms_ops(stack, "apply", "-f", str(path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" unchanged ") == 3
    assert len(asyncio.run(audited(stack, namespace))) == 3


def test_an_invalid_file_is_rejected_naming_file_line_and_field_and_nothing_is_written(
    stack: StatePaths, namespace: str, tmp_path: Path
) -> None:
    good = write(tmp_path, "a_good.yaml", GOOD, namespace)
    bad = write(
        tmp_path,
        "b_bad.yaml",
        "kind: alert\nnamespace: usds_unemployment\nname: fast\n"
        "metric: api.latency_p99\n\ncondition: '~ 3'\n",
        namespace,
    )
    result = hms_ops(stack, "apply", "-f", str(good), "-f", str(bad))
    assert result.returncode == 1
    assert f"{bad}:6: alert 'fast' field condition: condition '~ 3' must be" in result.stderr
    # one multi-document file, and a folder, are all or nothing too
    both = write(tmp_path, "c_both.yaml", GOOD + "---\n" + bad.read_text(), namespace)
    assert hms_ops(stack, "apply", "-f", str(both)).returncode == 1
    assert hms_ops(stack, "apply", "-f", str(tmp_path)).returncode == 1
    listed = hms_ops(stack, "get", "metric", "-n", namespace, "-o", "json")
    assert json.loads(listed.stdout) == []


def test_check_validates_without_connecting_or_writing(
    stack: StatePaths, namespace: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "app.yaml", GOOD, namespace)
    nowhere = subprocess.run(
        [sys.executable, "-m", "hms_ops", "apply", "-f", str(path), "--check"],
        env={**os.environ, "HMS_STATE_DIR": str(tmp_path / "no-stack")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert nowhere.returncode == 0, nowhere.stderr
    assert nowhere.stdout.strip() == "3 objects valid"
    listed = hms_ops(stack, "get", "alert", "-n", namespace, "-o", "json")
    assert json.loads(listed.stdout) == []


def test_the_config_bucket_keeps_the_history_its_spec_says(stack: StatePaths) -> None:
    async def history() -> int | None:
        nc = await admin_connect(
            json.loads(stack.stack_file.read_text())["nats_url"],
            load_credentials(stack)[ADMIN_USER],
        )
        try:
            info = await nc.jetstream().stream_info(specs.kv_stream(specs.CONFIG))
            return info.config.max_msgs_per_subject
        finally:
            await nc.close()

    assert asyncio.run(history()) == specs.CONFIG.history
