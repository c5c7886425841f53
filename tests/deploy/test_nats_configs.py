"""The generated nats-server configurations (compose's single node, the 3-node cluster) are
accepted by nats-server itself, carry the contracts' users, and keep no password."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hms_contracts import topology
from hms_devtools import natsconf
from hms_stack.natsserver import nats_server_binary
from hms_testing.tlsca import TestCA

ROOT = Path(__file__).resolve().parents[2]
NATS = ROOT / "infra" / "nats"


def password_env() -> dict[str, str]:
    users = [natsconf.ADMIN_USER, *(natsconf.service_user(s.name) for s in topology.SERVICES)]
    return {natsconf.password_variable(u): f"pw-{u}" for u in users}


def check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(nats_server_binary()), "-c", str(config), "-t"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def copy_tree(tmp_path: Path, tls_dir: Path | None = None) -> Path:
    """infra/nats as a container sees it, with the certificates' folder moved into tmp."""
    dest = tmp_path / "nats"
    for path in NATS.rglob("*.conf"):
        target = dest / path.relative_to(NATS)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text()
        if tls_dir is not None:
            text = text.replace(natsconf.TLS_DIR, str(tls_dir))
        target.write_text(text)
    return dest


def test_single_node_config_is_valid_with_every_password_set(tmp_path: Path) -> None:
    out = check(copy_tree(tmp_path) / "nats.conf", password_env())
    assert out.returncode == 0, out.stderr + out.stdout


def test_a_missing_password_is_refused_by_name(tmp_path: Path) -> None:
    env = password_env()
    del env["HMS_NATS_WORKER_POOL_PASSWORD"]
    out = check(copy_tree(tmp_path) / "nats.conf", env)
    assert out.returncode != 0
    assert "HMS_NATS_WORKER_POOL_PASSWORD" in out.stderr + out.stdout


def test_passwords_must_start_with_a_letter(tmp_path: Path) -> None:
    env = password_env()
    env["HMS_NATS_CONSOLE_PASSWORD"] = "2024-01-01abc"  # read as a date: refused
    assert check(copy_tree(tmp_path) / "nats.conf", env).returncode != 0
    env["HMS_NATS_CONSOLE_PASSWORD"] = natsconf.new_password()
    out = check(copy_tree(tmp_path) / "nats.conf", env)
    assert out.returncode == 0, out.stderr


def test_cluster_nodes_are_valid_with_their_certificates(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "tls")
    ca.issue("nats", hosts=("nats", "nats-1", "nats-2", "nats-3"), stem="server")
    ca.issue("route", hosts=("nats-1", "nats-2", "nats-3"), stem="route")
    tree = copy_tree(tmp_path, tls_dir=tmp_path / "tls")
    for n in (1, 2, 3):
        out = check(tree / "cluster" / f"nats-{n}.conf", password_env())
        assert out.returncode == 0, out.stderr + out.stdout


def test_cluster_nodes_route_to_each_other_with_mutual_tls() -> None:
    for n in (1, 2, 3):
        node = natsconf.cluster_node(n)
        assert node["server_name"] == f"nats-{n}"
        assert node["jetstream"]["sync_interval"] == "always"
        others = {f"nats-route://nats-{i}:6222" for i in (1, 2, 3) if i != n}
        assert set(node["cluster"]["routes"]) == others
        assert node["cluster"]["tls"]["verify"] is True


def test_auth_has_each_service_with_its_generated_permissions() -> None:
    text = (NATS / "auth.conf").read_text()
    permissions = json.loads((NATS / "permissions.json").read_text())
    for svc in topology.SERVICES:
        assert f'"user": "hms-{svc.name}"' in text
        assert permissions[svc.name] == topology.nats_permissions(svc)
        var = natsconf.password_variable(f"hms-{svc.name}")
        assert f"${var}" in text
    assert "pw-" not in text


@pytest.mark.parametrize("user", ["hms-worker-pool", "hms-admin"])
def test_password_variables_are_named_after_the_user(user: str) -> None:
    expected = {"hms-worker-pool": "HMS_NATS_WORKER_POOL_PASSWORD"}
    assert natsconf.password_variable(user) == expected.get(user, "HMS_NATS_ADMIN_PASSWORD")
