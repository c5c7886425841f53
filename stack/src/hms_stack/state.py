"""What only the stack writes into its state folder: credentials, server users, the stack file."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
from hms_contracts import topology
from hms_ops.state import ADMIN_USER, StatePaths, read_credentials

from .errors import StackError

#: bcrypt cost of the passwords in nats-server's config (nats-server accepts $2a$/$2b$ hashes)
BCRYPT_COST = 11


class CredentialsError(StackError):
    """The stack's credentials file is unusable; the message names the file and the user."""


def write_private(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(data, indent=2))
    tmp.replace(path)


def load_credentials(paths: StatePaths) -> dict[str, str]:
    """Per-service NATS passwords (and the admin's), created once and kept private (0600).

    An empty password is refused: nats-server would take it as no password at all.
    """
    users = [ADMIN_USER, *topology.SERVICE_NAMES]
    creds: dict[str, str] = {}
    if paths.credentials.exists():
        paths.credentials.chmod(0o600)
        creds = read_credentials(paths)  # a corrupt file is an error naming it
    empty = [u for u in users if u in creds and not creds[u]]
    if empty:
        raise CredentialsError(
            f"{paths.credentials}: empty password for {', '.join(empty)}; set one, or remove "
            "the entry to have a random one generated"
        )
    missing = [u for u in users if u not in creds]
    if missing:
        for user in missing:
            creds[user] = secrets.token_urlsafe(24)
        write_private(paths.credentials, creds)
    return creds


def _fingerprint(password: str) -> str:
    # kept beside the plaintext credentials (same 0700 folder): it only tells whether a
    # cached bcrypt hash still belongs to the current password, without a slow check
    return hashlib.sha256(password.encode()).hexdigest()


def password_hashes(paths: StatePaths, creds: dict[str, str]) -> dict[str, str]:
    """bcrypt hashes of the passwords, cached in the state folder (bcrypt is slow by design:
    only a new or changed password is hashed again, in parallel)."""
    cache: dict[str, dict[str, str]] = {}
    if paths.password_hashes.exists():
        try:
            cache = json.loads(paths.password_hashes.read_text())
        except ValueError:
            cache = {}  # a cache: rebuilt when unreadable
    stale = [
        user
        for user, password in creds.items()
        if cache.get(user, {}).get("fingerprint") != _fingerprint(password)
    ]
    if stale:

        def hashed(user: str) -> str:
            salt = bcrypt.gensalt(BCRYPT_COST)
            return bcrypt.hashpw(creds[user].encode(), salt).decode()

        with ThreadPoolExecutor() as pool:  # bcrypt releases the GIL
            for user, digest in zip(stale, pool.map(hashed, stale), strict=True):
                cache[user] = {"fingerprint": _fingerprint(creds[user]), "bcrypt": digest}
        write_private(paths.password_hashes, {u: cache[u] for u in sorted(creds)})
    return {user: cache[user]["bcrypt"] for user in creds}


def service_hashes(paths: StatePaths) -> dict[str, str]:
    """The bcrypt hashes of the admin's and the services' passwords."""
    return password_hashes(paths, load_credentials(paths))


def nats_users(
    hashes: dict[str, str], clients: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """nats-server users with bcrypt-hashed passwords: the admin may do anything, each
    service only what it needs, each namespace client (``clients``) only its namespace."""
    if not hashes.get(ADMIN_USER):
        raise CredentialsError(f"no password for the admin user {ADMIN_USER}")
    users: dict[str, dict[str, Any]] = {ADMIN_USER: {"password": hashes[ADMIN_USER]}}
    for svc in topology.SERVICES:
        users[f"hms-{svc.name}"] = {
            "password": hashes[svc.name],
            "permissions": topology.nats_permissions(svc),
        }
    for user, spec in (clients or {}).items():
        if user in users:
            raise CredentialsError(f"namespace client {user} clashes with a stack user")
        users[user] = dict(spec)
    return users


def write_stack_file(paths: StatePaths, info: dict[str, Any]) -> None:
    tmp = paths.stack_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(paths.stack_file)
