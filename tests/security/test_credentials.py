"""Credentials: hashed in the server's config, private on disk, absent from every log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hms_ops.state import ADMIN_USER, StatePaths
from hms_stack.natsserver import free_port
from hms_stack.state import CredentialsError, load_credentials

from .conftest import SecuredStack


def test_the_server_config_holds_only_bcrypt_hashes(secured_stack: SecuredStack) -> None:
    config = json.loads(secured_stack.server.config_path.read_text())
    users = config["authorization"]["users"]
    assert len(users) == len(secured_stack.creds) + 1  # and the namespace client
    for user in users:
        assert user["password"].startswith(("$2a$11$", "$2b$11$")), user["user"]


def test_no_password_is_written_in_clear_outside_the_credentials_file(
    secured_stack: SecuredStack,
) -> None:
    for path in secured_stack.paths.root.rglob("*"):
        if path.is_file() and path != secured_stack.paths.credentials:
            text = path.read_bytes()
            for user, password in secured_stack.creds.items():
                assert password.encode() not in text, f"{user}'s password is in {path}"


def test_credentials_and_hashes_are_private_to_their_owner(secured_stack: SecuredStack) -> None:
    paths = secured_stack.paths
    for path in (paths.credentials, paths.password_hashes, secured_stack.server.config_path):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_credentials_file_opened_to_others_is_made_private_again(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.make()
    load_credentials(paths)
    paths.credentials.chmod(0o644)
    load_credentials(paths)
    assert paths.credentials.stat().st_mode & 0o777 == 0o600


def test_an_empty_admin_password_is_refused_naming_the_user(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.make()
    paths.credentials.write_text(json.dumps({ADMIN_USER: ""}))
    with pytest.raises(CredentialsError, match=f"empty password for {ADMIN_USER}"):
        load_credentials(paths)


@pytest.mark.slow
def test_up_refuses_an_empty_admin_password_with_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "credentials.json").write_text(json.dumps({ADMIN_USER: ""}))
    out = subprocess.run(
        [sys.executable, "-m", "hms_ops", "up", "--nats-port", str(free_port())],
        env={"HMS_STATE_DIR": str(state), "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert f"empty password for {ADMIN_USER}" in out.stderr
    assert "Traceback" not in out.stderr
