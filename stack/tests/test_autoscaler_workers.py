"""``hms-ops up`` gives the autoscaler what its local workers need: the worker-pool's NATS user,
so a worker it starts has the worker-pool's permissions and not the autoscaler's."""

from __future__ import annotations

from pathlib import Path

from hms_ops.state import StatePaths
from hms_stack.stack import UpOptions, service_children


def test_the_autoscaler_carries_the_worker_pools_credentials_for_its_workers(
    tmp_path: Path,
) -> None:
    paths = StatePaths(tmp_path / "state")
    paths.make()
    creds = {"autoscaler": "a-secret", "worker-pool": "w-secret"}
    creds |= {name: "x" for name in ("scheduler", "metrics-collector", "evaluator")}
    creds |= {name: "x" for name in ("incident-engine", "console")}
    children = {c.name: c for c in service_children(UpOptions(paths), "nats://h:1", creds)}
    env = children["autoscaler"].env
    assert env["HMS_AUTOSCALER_NATS_USER"] == "hms-autoscaler"
    assert env["HMS_WORKER_POOL_NATS_USER"] == "hms-worker-pool"
    assert env["HMS_WORKER_POOL_NATS_PASSWORD"] == "w-secret"
    assert env["HMS_WORKER_POOL_NATS_URL"] == "nats://h:1"
    assert children["scheduler"].env.get("HMS_WORKER_POOL_NATS_PASSWORD") != "w-secret"
