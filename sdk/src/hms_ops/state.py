"""Where a local stack lives (NATS data, logs, credentials, stack file); how a client finds it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
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


def read_stack_file(paths: StatePaths) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(paths.stack_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def read_credentials(paths: StatePaths) -> dict[str, str]:
    """The local stack's NATS passwords, by user (private: mode 0600)."""
    creds: dict[str, str] = json.loads(paths.credentials.read_text())
    return creds


async def admin_connect(url: str, password: str) -> Client:
    """Connect as the local stack's admin user (provisioning, status)."""
    return await nats.connect(
        url,
        user=ADMIN_USER,
        password=password,
        name="hms-ops-cli",
        max_reconnect_attempts=3,
        connect_timeout=2,
    )
