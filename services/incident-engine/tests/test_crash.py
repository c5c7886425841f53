"""kill -9 of the incident engine in the middle of a playbook (a real process, a real
nats-server): the completed step is not repeated, the orphaned step process is killed, and the
interrupted step runs again only if it is idempotent, else the incident needs attention."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import IncidentUpdated, specs
from hms_contracts.config import ConfigObject
from hms_kit import ensure_stream, provision_shared, publish
from hms_kit.settings import env_prefix
from hms_ops.configstore import ConfigStore
from hms_testing import NatsHandle, wait_until
from hms_testing.incidents import (
    firing,
    invocations,
    latency_rule,
    rollback_playbook,
    wait_for_event,
)
from hms_testing.processes import ServiceLauncher
from nats.js import JetStreamContext

pytestmark = pytest.mark.slow

#: a stand-in kubectl that hangs the first time it is asked to, and succeeds after
KUBECTL = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *slow*) if [ ! -e "{once}" ]; then touch "{once}"; echo $$ > "{pid}"; sleep 600; fi ;;
esac
echo ok
"""


def stand_in(tmp_path: Path) -> tuple[Path, Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, pid = tmp_path / "kubectl.log", tmp_path / "hung.pid"
    script = bin_dir / "kubectl"
    script.write_text(KUBECTL.format(log=log, once=tmp_path / "once", pid=pid))
    script.chmod(0o755)
    return bin_dir, log, pid


async def configure(js: JetStreamContext, objects: list[ConfigObject]) -> None:
    await provision_shared(js)
    await ensure_stream(js, specs.ALERTS)
    store = ConfigStore(await js.key_value(specs.CONFIG.bucket), author="test")
    await store.apply(objects)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.mark.parametrize("idempotent", [False, True])
async def test_kill_9_mid_playbook(
    nats_server: NatsHandle,
    js: JetStreamContext,
    start_service: ServiceLauncher,
    tmp_path: Path,
    idempotent: bool,
) -> None:
    bin_dir, log, pid_file = stand_in(tmp_path)
    slow: dict[str, Any] = {
        "action": "run",
        "argv": ["kubectl", "rollout", "status", "slow"],
        "timeout_s": 300,
        "idempotent": idempotent,
    }
    playbook = rollback_playbook("kubectl rollout undo deploy/benefits-api", slow, "kubectl done")
    await configure(js, [playbook, latency_rule()])
    prefix = env_prefix("incident-engine")
    env = {prefix + "STEP_PATH": f"{bin_dir}:/usr/bin:/bin"}
    engine = await start_service("hms_incident_engine", env=env)
    await publish(js, firing())
    hung = int(
        await wait_until(
            lambda: pid_file.exists() and pid_file.read_text().strip(),
            timeout=20,
            message="the slow step runs",
        )
    )
    os.kill(engine.pid, signal.SIGKILL)
    engine.proc.wait()  # type: ignore[union-attr]
    assert alive(hung), "the step's process outlives the engine (its own session)"

    await engine.restart()
    await wait_until(lambda: not alive(hung), timeout=20, message="the orphan killed")
    if idempotent:
        await wait_for_event(
            js,
            lambda s, e: isinstance(e, IncidentUpdated) and e.status == "resolved",
            "the playbook finished",
        )
        assert invocations(log) == [
            "rollout undo deploy/benefits-api",
            "rollout status slow",
            "rollout status slow",
            "done",
        ]
    else:
        events = await wait_for_event(
            js,
            lambda s, e: isinstance(e, IncidentUpdated) and e.status == "needs_attention",
            "handed to people",
        )
        [update] = [
            e for _, e in events if isinstance(e, IncidentUpdated) and e.status == "needs_attention"
        ]
        assert "not idempotent" in (update.note or "")
        assert invocations(log) == ["rollout undo deploy/benefits-api", "rollout status slow"]
