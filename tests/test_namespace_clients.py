"""Namespace clients of a stack started with ``hms-ops up``: the documents' script runs
unchanged, and a client is added and revoked without restarting nats-server or a service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hms_contracts import topology
from hms_ops import NOC, ConnectError
from hms_ops.state import ADMIN_USER, StatePaths, admin_connect, read_credentials
from hms_testing import wait_for, wait_until
from hms_testing.stacks import RunningStack, start_stack, stop_stack

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("nsclients"))

    try:
        yield running
    finally:
        stop_stack(running)


def admin_password(stack: RunningStack) -> str:
    return read_credentials(StatePaths(stack.state_dir))[ADMIN_USER]


def hms_ops(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hms_ops", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pids(stack: RunningStack) -> dict[str, int]:
    info = stack.info
    return {"nats-server": info["nats_pid"]} | {
        name: svc["pid"] for name, svc in info["services"].items()
    }


async def test_the_documents_script_runs_unchanged_against_up(stack: RunningStack) -> None:
    before = pids(stack)
    env = {k: v for k, v in stack.env().items() if not k.startswith("HMS_NATS_")}
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "examples" / "ops_setup.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "armed" in out.stdout
    nc = await admin_connect(stack.info["nats_url"], admin_password(stack))
    try:
        kv = await nc.jetstream().key_value(topology.CONFIG_BUCKET)
        for key in (
            "usds_unemployment.metric.api.latency_p99",
            "usds_unemployment.alert.sla_latency_breach",
            "usds_unemployment.playbook.sla_latency_breach",
        ):
            assert (await kv.get(key)).value, key
    finally:
        await nc.close()
    assert pids(stack) == before  # the new client came with a reload, not a restart


async def test_a_revoked_client_is_refused_without_restarting_anything(
    stack: RunningStack,
) -> None:
    created = hms_ops(stack, "namespaces", "create", "SSA")
    assert created.returncode == 0, created.stderr
    secret = StatePaths(stack.state_dir).namespace_file("ssa")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    before = pids(stack)
    noc = await NOC.aconnect("ssa", state_dir=stack.state_dir)
    user, password = noc.bus.target.user, noc.bus.target.password
    await noc.publish("deploy_finished", {"version": "1"})

    revoked = hms_ops(stack, "namespaces", "revoke", "ssa")
    assert revoked.returncode == 0, revoked.stderr
    await wait_until(lambda: not noc.bus.nc.is_connected, 5, message="the connection closed")
    # the connected client stops retrying at the first refusal and says why on every call
    await wait_until(lambda: noc.bus.nc.is_closed, 10, message="the client gave up reconnecting")
    with pytest.raises(ConnectError, match=r"refused ns-ssa on reconnecting .*revoked"):
        await noc.publish("deploy_finished", {"version": "2"})
    with pytest.raises(ConnectError, match="revoked"):
        noc.observe("api.errors", 1.0)
    with pytest.raises(ConnectError, match=r"refused ns-ssa .*bad or revoked"):
        await NOC.aconnect("ssa", url=stack.info["nats_url"], user=user, password=password)

    assert pids(stack) == before
    code, rows = await asyncio.to_thread(stack.status)
    assert code == 0, stack.last_status_stderr
    assert {r["service"] for r in rows} == set(topology.SERVICE_NAMES)
    listed = hms_ops(stack, "namespaces", "list", "--json")
    assert '"ssa"' not in listed.stdout


def test_a_bad_namespace_name_is_refused_with_the_rule(stack: RunningStack) -> None:
    out = hms_ops(stack, "namespaces", "create", "usds-unemployment")
    assert out.returncode == 2
    assert "lower-case letters" in out.stderr
    assert "Traceback" not in out.stderr


def test_namespace_files_are_private(stack: RunningStack) -> None:
    wait_for(lambda: StatePaths(stack.state_dir).namespaces.exists(), 5, "the folder")
    mode = os.stat(StatePaths(stack.state_dir).namespaces).st_mode & 0o777
    assert mode == 0o700
