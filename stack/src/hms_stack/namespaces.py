"""Namespace clients: a NATS user per namespace, added and revoked without restarting anything.

Each client's credential is a private file in the state folder (``namespaces/<ns>.json``,
0600: user, random password, its bcrypt hash, declared durables). Adding or revoking one
rewrites the ``authorization`` block of the running server's config and asks nats-server to
reload it (SIGHUP): the server applies the new users and permissions in place, and closes the
connections of users that are gone; every other connection, the services' included, stays up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
from hms_contracts import topology
from hms_contracts.errors import SubjectError
from hms_contracts.tokens import check_namespace
from hms_ops.state import StatePaths, read_json, read_namespace_client, read_stack_file

from .errors import StackError
from .natsserver import render_users
from .state import BCRYPT_COST, nats_users, service_hashes, write_private

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamespaceClient:
    """One namespace's client credential."""

    namespace: str
    user: str
    password: str
    password_bcrypt: str
    durables: tuple[str, ...]
    created_at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "user": self.user,
            "password": self.password,
            "password_bcrypt": self.password_bcrypt,
            "durables": list(self.durables),
            "created_at": self.created_at,
        }

    def nats_user(self) -> dict[str, Any]:
        return {
            "password": self.password_bcrypt,
            "permissions": topology.namespace_permissions(self.namespace, self.durables),
        }


def normalise(namespace: str) -> str:
    """``USDS_Unemployment`` is ``usds_unemployment``; StackError saying why a name is not one."""
    try:
        return check_namespace(namespace.strip().lower())
    except SubjectError as exc:
        raise StackError(str(exc)) from None


def _client(paths: StatePaths, namespace: str) -> NamespaceClient | None:
    data = read_namespace_client(paths, namespace)
    if data is None:
        return None
    if not isinstance(data.get("password_bcrypt"), str):
        raise StackError(f"{paths.namespace_file(namespace)} has no password hash; create again")
    return NamespaceClient(
        namespace=namespace,
        user=data["user"],
        password=data["password"],
        password_bcrypt=data["password_bcrypt"],
        durables=tuple(data.get("durables") or ()),
        created_at=str(data.get("created_at", "")),
    )


def list_clients(paths: StatePaths) -> list[NamespaceClient]:
    """Every namespace client of this state folder, by namespace."""
    if not paths.namespaces.is_dir():
        return []
    found = (_client(paths, p.stem) for p in sorted(paths.namespaces.glob("*.json")))
    return [c for c in found if c is not None]


def namespace_users(paths: StatePaths) -> dict[str, dict[str, Any]]:
    """The nats-server users of every namespace client."""
    return {c.user: c.nats_user() for c in list_clients(paths)}


@contextlib.contextmanager
def _locked(paths: StatePaths) -> Iterator[None]:
    paths.make()  # private (0700), or refused when others may write there
    paths.namespaces.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(paths.namespaces / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create(paths: StatePaths, namespace: str, durables: Sequence[str] = ()) -> NamespaceClient:
    """Create a namespace's client (or add durables to it; its password is kept) and apply it
    to the running stack, if any."""
    ns = normalise(namespace)
    for durable in durables:
        try:
            topology.durable_consumers(ns, durable)
        except ValueError as exc:
            raise StackError(str(exc)) from None
    with _locked(paths):
        current = _client(paths, ns)
        if current is None:
            password = secrets.token_urlsafe(24)
            digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
            current = NamespaceClient(
                ns, topology.namespace_user(ns), password, digest, (), datetime.now(UTC).isoformat()
            )
        merged = tuple(dict.fromkeys((*current.durables, *durables)))
        client = NamespaceClient(**{**current.__dict__, "durables": merged})
        if client != current or not paths.namespace_file(ns).exists():
            write_private(paths.namespace_file(ns), client.as_json())
            apply_to_server(paths)
    return client


def revoke(paths: StatePaths, namespace: str) -> bool:
    """Remove a namespace's client; the server drops its connections. False when none existed."""
    ns = normalise(namespace)
    with _locked(paths):
        path = paths.namespace_file(ns)
        if not path.exists():
            return False
        path.unlink()
        apply_to_server(paths)
    return True


def apply_to_server(paths: StatePaths) -> bool:
    """Rewrite the users of the stack's nats-server config and have the server reload it.

    False when no stack runs from ``paths`` (the next ``hms-ops up`` writes them anyway).
    """
    config_path = paths.nats / "nats-server.conf"
    try:
        config = read_json(config_path, "start the stack again: `hms-ops up` rewrites it")
    except FileNotFoundError:
        return False
    users: Mapping[str, Mapping[str, Any]] = nats_users(
        service_hashes(paths), namespace_users(paths)
    )
    config["authorization"] = render_users(users)
    write_private(config_path, config)
    pid = _stack_nats_pid(paths, config_path)
    if pid is None:
        return False
    monitor = config.get("http")
    monitor = monitor if isinstance(monitor, str) else None
    loaded = _config_load_time(monitor) if monitor else None
    os.kill(pid, signal.SIGHUP)  # nats-server: reload the configuration
    log.info("nats-server (pid %s) reloads its users", pid)
    if monitor and loaded is not None:
        # the reload is asynchronous: a client connecting right after its credential was
        # written would be refused, so return once the server says it reloaded
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while _config_load_time(monitor) == loaded and time.monotonic() < deadline:
            time.sleep(0.02)
    return True


#: how long ``apply_to_server`` waits for nats-server to say it reloaded its users
RELOAD_TIMEOUT_S = 5.0


def _config_load_time(monitor: str) -> str | None:
    """When nats-server last loaded its configuration (``/varz``), or None if it cannot say."""
    try:
        with urllib.request.urlopen(f"http://{monitor}/varz", timeout=2) as answer:
            found = json.load(answer).get("config_load_time")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None


def _stack_nats_pid(paths: StatePaths, config_path: Path) -> int | None:
    """The pid of the stack's running nats-server, checked to be ours (its command line names
    our config), or None."""
    info = read_stack_file(paths)
    pid = (info or {}).get("nats_pid")
    if not isinstance(pid, int):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if str(config_path).encode() not in argv or not argv[0].endswith(b"nats-server"):
        return None
    return pid


def ensure_client(state_dir: Path, namespace: str, durables: Sequence[str] = ()) -> dict[str, str]:
    """For the SDK (entry point ``hms_ops.namespaces``): the namespace's client credential in
    a local stack's state folder, created (or given the durables) if needed."""
    client = create(StatePaths(state_dir), namespace, durables)
    return {"user": client.user, "password": client.password}
