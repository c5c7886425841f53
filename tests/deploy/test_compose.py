"""compose.yaml, as Debian's docker-compose reads it: NATS with the generated users, a one-shot
provisioner, every service with its settings, health check and dependencies, and a worker-pool
that scales (no fixed name, host port or shared volume)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hms_contracts import topology
from hms_devtools import natsconf
from hms_kit.container import HEALTHCHECK
from hms_kit.settings import env_prefix

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")

pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)


def volumes(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, mode), from docker-compose's short form ``source:target:mode``."""
    found = {}
    for entry in spec.get("volumes", []):
        source, target, mode = [*entry.split(":"), "rw"][:3]
        found[target] = (source, mode)
    return found


def ports(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port), from ``address:host_port:container_port/tcp``."""
    found = []
    for entry in spec.get("ports", []):
        address, _, target = str(entry).split("/")[0].split(":")
        found.append((address, int(target)))
    return found


def passwords() -> dict[str, str]:
    users = [natsconf.ADMIN_USER, *(natsconf.service_user(s.name) for s in topology.SERVICES)]
    return {natsconf.password_variable(u): f"secret-{u}" for u in users}


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    return subprocess.run(
        [COMPOSE, "--project-directory", str(ROOT), "-f", str(ROOT / "compose.yaml"), "config"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    out = compose_config(passwords())
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = yaml.safe_load(out.stdout)
    return data


def test_every_service_runs_from_the_one_image_recipe(config: dict[str, Any]) -> None:
    services = config["services"]
    for svc in topology.SERVICES:
        spec = services[svc.name]
        assert spec["build"]["dockerfile"] == "infra/Containerfile"
        assert spec["build"]["args"]["PACKAGE"] == f"hms-{svc.name}"
        env = spec["environment"]
        prefix = env_prefix(svc.name)
        assert env["HMS_SERVICE_PACKAGE"] == f"hms-{svc.name}"
        assert env[prefix + "NATS_URL"] == "nats://nats:4222"
        assert env[prefix + "NATS_USER"] == f"hms-{svc.name}"
        assert env[prefix + "NATS_PASSWORD"] == f"secret-hms-{svc.name}"
        assert spec["healthcheck"]["test"] == ["CMD", *HEALTHCHECK]
        assert spec["depends_on"]["nats"]["condition"] == "service_healthy"
        assert spec["depends_on"]["provision"]["condition"] == "service_completed_successfully"
        assert "ALL" in spec["cap_drop"]


def test_the_worker_pool_scales(config: dict[str, Any]) -> None:
    worker = config["services"]["worker-pool"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert not [s for s, _ in volumes(worker).values() if not s.startswith("/")]  # no named one


def test_nats_runs_the_generated_config_and_publishes_only_on_loopback(
    config: dict[str, Any],
) -> None:
    nats = config["services"]["nats"]
    assert nats["command"] == ["nats-server", "-c", "/etc/nats/nats.conf"]
    mounts = volumes(nats)
    assert mounts["/etc/nats"] == (str(ROOT / "infra" / "nats"), "ro")
    assert mounts["/data"][0] == "nats-data"
    assert sorted(ports(nats)) == [("127.0.0.1", 4222), ("127.0.0.1", 8222)]
    for variable, value in passwords().items():
        assert nats["environment"][variable] == value
    conf = (ROOT / "infra" / "nats" / "nats.conf").read_text()
    assert '"sync_interval": "always"' in conf
    assert 'include "auth.conf"' in conf


def test_the_provisioner_runs_once_as_the_admin(config: dict[str, Any]) -> None:
    provision = config["services"]["provision"]
    assert provision["command"] == ["hms-ops", "provision"]
    assert provision["restart"] == "no"
    assert provision["environment"]["HMS_NATS_USER"] == "hms-admin"
    assert provision["environment"]["HMS_NATS_PASSWORD"] == "secret-hms-admin"


def test_the_console_is_published_on_loopback_only(config: dict[str, Any]) -> None:
    assert ports(config["services"]["console"]) == [("127.0.0.1", 8080)]


def test_a_missing_password_stops_compose_by_name() -> None:
    env = passwords()
    del env["HMS_NATS_EVALUATOR_PASSWORD"]
    out = compose_config(env)
    assert out.returncode != 0
    assert "HMS_NATS_EVALUATOR_PASSWORD" in out.stderr
