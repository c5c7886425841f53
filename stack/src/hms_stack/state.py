"""What only the stack writes into its state folder: credentials, server users, the stack file."""

from __future__ import annotations

import json
import secrets
from typing import Any

from hms_contracts import topology
from hms_ops.state import ADMIN_USER, StatePaths, read_credentials


def load_credentials(paths: StatePaths) -> dict[str, str]:
    """Per-service NATS passwords (and the admin's), created once and kept private (0600)."""
    users = [ADMIN_USER, *topology.SERVICE_NAMES]
    creds: dict[str, str] = {}
    if paths.credentials.exists():
        creds = read_credentials(paths)  # a corrupt file is an error naming it
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
