"""The state folder of an embedded stack: NATS data, logs, local credentials, stack file."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hms_contracts import topology
from platformdirs import user_data_dir

ADMIN_USER = "hms-admin"


def default_state_dir() -> Path:
    """``HMS_STATE_DIR``, or hms-ops' folder under the user's data directory."""
    env = os.environ.get("HMS_STATE_DIR")
    return Path(env) if env else Path(user_data_dir("hms-ops", appauthor=False))


@dataclass(frozen=True)
class StatePaths:
    """Where everything of one embedded stack lives."""

    root: Path

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def services(self) -> Path:
        return self.root / "services"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    def make(self) -> None:
        for path in (self.root, self.nats, self.logs, self.services):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)


def load_credentials(paths: StatePaths) -> dict[str, str]:
    """Per-service NATS passwords (and the admin's), created once and kept private (0600)."""
    users = [ADMIN_USER, *topology.SERVICE_NAMES]
    creds: dict[str, str] = {}
    if paths.credentials.exists():
        creds = json.loads(paths.credentials.read_text())
    missing = [u for u in users if u not in creds]
    if missing:
        for user in missing:
            creds[user] = secrets.token_urlsafe(24)
        tmp = paths.credentials.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(json.dumps(creds, indent=2))
        tmp.replace(paths.credentials)
    return creds


def nats_users(creds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """nats-server users: the admin may do anything, each service only what it needs."""
    users: dict[str, dict[str, Any]] = {ADMIN_USER: {"password": creds[ADMIN_USER]}}
    for svc in topology.SERVICES:
        users[f"hms-{svc.name}"] = {
            "password": creds[svc.name],
            "permissions": topology.nats_permissions(svc),
        }
    return users


def write_stack_file(paths: StatePaths, info: dict[str, Any]) -> None:
    tmp = paths.stack_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(paths.stack_file)


def read_stack_file(paths: StatePaths) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(paths.stack_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data
