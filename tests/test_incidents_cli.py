"""``hms-ops incidents | silences | audit``: the incident engine as a real process with its
least-privilege NATS user, the documents' playbook applied with ``hms-ops apply``, an alert,
then the commands a responder and an auditor use."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hms_kit import publish
from hms_kit.settings import env_prefix
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect, read_credentials, read_stack_file
from hms_testing import wait_until
from hms_testing.incidents import KUBECTL, NS, firing
from hms_testing.processes import ServiceLauncher, ServiceProcess
from hms_testing.stacks import hms_ops_in, provisioned_state

pytestmark = pytest.mark.slow

CONFIG = f"""\
kind: playbook
namespace: {NS}
name: rollback
steps:
  - kubectl rollout undo deploy/benefits-api
  - notify oncall 'Rollback complete'
---
kind: playbook
namespace: {NS}
name: restart
params:
  pod: {{type: name}}
steps:
  - kubectl --token={{{{secret.kube}}}} delete pod {{{{pod}}}}
---
kind: alert
namespace: {NS}
name: api_latency_p99_high
metric: api.latency_p99
condition: "> 1000"
window: 5m
playbook: rollback
"""


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StatePaths]:
    with provisioned_state(tmp_path / "state") as paths:
        yield paths


@pytest.fixture
async def engine(
    state: StatePaths, tmp_path: Path
) -> AsyncIterator[tuple[StatePaths, ServiceProcess]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(KUBECTL.replace("$KUBECTL_LOG", str(tmp_path / "k.log")))
    (bin_dir / "kubectl").chmod(0o755)
    config = tmp_path / "rollback.yaml"
    config.write_text(CONFIG)
    applied = await cli(state, "apply", "-f", str(config))
    assert applied.returncode == 0, applied.stderr
    creds = read_credentials(state)
    stack = read_stack_file(state)
    assert stack is not None
    launcher = ServiceLauncher(tmp_path / "services", stack["nats_url"])
    prefix = env_prefix("incident-engine")
    try:
        proc = await launcher(
            "hms_incident_engine",
            env={
                prefix + "NATS_USER": "hms-incident-engine",
                prefix + "NATS_PASSWORD": creds["incident-engine"],
                prefix + "STEP_PATH": f"{bin_dir}:/usr/bin:/bin",
            },
        )
        yield state, proc
    finally:
        launcher.close()


async def cli(paths: StatePaths, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(hms_ops_in, paths, *args)


async def send_alert(paths: StatePaths) -> None:
    stack = read_stack_file(paths)
    assert stack is not None
    nc = await admin_connect(stack["nats_url"], read_credentials(paths)[ADMIN_USER])
    try:
        await publish(nc.jetstream(), firing())
    finally:
        await nc.close()


async def listed(paths: StatePaths) -> list[dict[str, Any]]:
    done = await cli(paths, "incidents", "list", "-n", NS, "--all", "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


async def test_a_responder_and_an_auditor_use_the_cli(
    engine: tuple[StatePaths, ServiceProcess], tmp_path: Path
) -> None:
    paths, proc = engine
    await send_alert(paths)

    async def resolved() -> list[dict[str, Any]]:
        return [r for r in await listed(paths) if r["status"] == "resolved"]

    [incident] = await wait_until(resolved, timeout=30, message=f"resolved\n{proc.log_tail()}")
    assert (tmp_path / "k.log").read_text() == "rollout undo deploy/benefits-api\n"
    iid = incident["incident_id"]

    shown = await cli(paths, "incidents", "show", iid, "-n", NS, "--json")
    timeline = [t["what"] for t in json.loads(shown.stdout)["timeline"]]
    assert timeline[0] == "opened"
    assert "step_started" in timeline
    assert timeline[-1] == "resolved"
    again = await cli(paths, "incidents", "resolve", iid, "-n", NS)
    assert again.stdout.strip() == f"{iid} resolved"
    missing = await cli(paths, "incidents", "ack", "inc-nope", "-n", NS)
    assert missing.returncode == 2
    assert "no incident 'inc-nope'" in missing.stderr

    rendered = await cli(paths, "incidents", "playbook", "rollback", "-n", NS, "--dry-run")
    assert rendered.stdout.splitlines() == [
        '0: ["kubectl", "rollout", "undo", "deploy/benefits-api"]',
        '1: ["notify", "oncall", "Rollback complete"]',
    ]
    args = ("incidents", "playbook", "restart", "-n", NS, "--dry-run", "-l")
    rendered = await cli(paths, *args, "pod=api-7d4b9")
    assert rendered.stdout == '0: ["kubectl", "--token=********", "delete", "pod", "api-7d4b9"]\n'
    refused = await cli(paths, *args, "pod=x; touch PWNED")
    assert refused.returncode == 1
    assert "parameter 'pod'" in refused.stderr
    assert "nothing would run" in refused.stderr

    added = await cli(
        paths,
        "silences",
        "add",
        "window",
        "-n",
        NS,
        "-m",
        'service="benefits_api"',
        "--for",
        "2h",
        "--reason",
        "maintenance",
    )
    assert added.returncode == 0, added.stderr
    listing = await cli(paths, "silences", "list", "-n", NS)
    assert "window  active" in listing.stdout
    expired = await cli(paths, "silences", "expire", "window", "-n", NS)
    assert expired.returncode == 0, expired.stderr
    listing = await cli(paths, "silences", "list", "-n", NS)
    assert "window  inactive" in listing.stdout

    verified = await cli(paths, "audit", "verify", "-n", NS)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: ")
    export = tmp_path / "audit.jsonl"
    exported = await cli(paths, "audit", "export", "-n", NS, "-o", str(export))
    assert exported.returncode == 0, exported.stderr
    alone = subprocess.run(
        [sys.executable, "-m", "hms_contracts.auditverify", str(export)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode == 0, alone.stdout
    actions = [json.loads(line)["action"] for line in export.read_text().splitlines()]

    # a new instance with an empty file (its least-privilege user) goes on with the chain
    checked = int(verified.stdout.split()[1])
    proc.env[env_prefix("incident-engine") + "STATE_DIR"] = str(tmp_path / "new-state")
    await proc.restart()

    async def verified_again() -> int | None:
        done = await cli(paths, "audit", "verify", "-n", NS)
        return int(done.stdout.split()[1]) if done.returncode == 0 else None

    continued = await wait_until(verified_again, timeout=60, message="the new leader verifies")
    assert continued >= checked, "the new instance took the chain from the bus"
    assert {"playbook.applied", "alert.applied", "incident.opened"} <= set(actions)
    assert "playbook.step_ended" in actions
