"""Where a local stack lives (NATS data, logs, credentials, stack file); how a client finds it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from platformdirs import user_data_dir

from .errors import StackError, StackNotAnswering

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
    def password_hashes(self) -> Path:
        return self.root / "password-hashes.json"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def namespaces(self) -> Path:
        """One private file per namespace client: its user, password and durables."""
        return self.root / "namespaces"

    def namespace_file(self, namespace: str) -> Path:
        return self.namespaces / f"{namespace}.json"

    def make(self) -> None:
        """Create the folders, private to this user (0700).

        An existing root is used as it is, never chmod'ed: it may be shared (``/tmp``) or
        someone's home. One that another user owns, or that others may write to, is refused:
        whoever can write there could swap the credentials or the server's configuration.
        """
        if self.root.exists():
            check_private(self.root)
        for path in (self.root, self.nats, self.logs, self.services):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)


def check_private(root: Path) -> None:
    """``root`` belongs to this user and nobody else may write into it."""
    st = root.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise StackError(f"the state folder {root} is not a folder; choose another")
    what = None
    if st.st_uid != os.geteuid():
        what = f"is owned by another user (uid {st.st_uid})"
    elif st.st_mode & 0o022:
        what = f"may be written by others (mode {stat.S_IMODE(st.st_mode):o})"
    if what:
        raise StackError(
            f"the state folder {root} {what}; hms-ops keeps credentials there and does not "
            "change a folder's permissions: choose a private one with --state-dir or "
            "HMS_STATE_DIR (e.g. a new folder inside it)"
        )


def read_json(path: Path, what: str) -> Any:
    """A JSON file the stack wrote; a missing file is FileNotFoundError, any other problem a
    StackError that names the file and says what to do."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise StackError(f"{path} is not valid JSON ({exc}); {what}") from None
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror or exc}; {what}") from None


def read_stack_file(paths: StatePaths) -> dict[str, Any] | None:
    """What the running stack wrote about itself, or None when no stack file exists."""
    try:
        data = read_json(
            paths.stack_file,
            "a killed stack may have left it half-written: if no `hms-ops up` runs from "
            f"{paths.root}, delete it and start the stack again",
        )
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nats_url"), str):
        raise StackError(
            f"{paths.stack_file} does not describe a stack (no nats_url); if no `hms-ops up` "
            "runs from there, delete it and start the stack again"
        )
    return data


def read_credentials(paths: StatePaths) -> dict[str, str]:
    """The local stack's NATS passwords, by user (private: mode 0600)."""
    fix = (
        "restore it, or stop the stack, delete it and run `hms-ops up`, which creates new "
        "credentials"
    )
    try:
        creds = read_json(paths.credentials, fix)
    except FileNotFoundError:
        raise StackError(
            f"{paths.credentials} is missing; run `hms-ops up`, which creates it"
        ) from None
    if not isinstance(creds, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in creds.items()
    ):
        raise StackError(f"{paths.credentials} is not a map of user names to passwords; {fix}")
    return creds


def read_namespace_client(paths: StatePaths, namespace: str) -> dict[str, Any] | None:
    """A namespace client's credential as ``hms-ops namespaces create`` keeps it (``user``,
    ``password``, ``durables``), or None when the namespace has none here."""
    path = paths.namespace_file(namespace)
    try:
        data = read_json(path, f"revoke and create the namespace {namespace} again")
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("user", "password")
    ):
        raise StackError(
            f"{path} holds no user and password; revoke and create the namespace {namespace} again"
        )
    return data


async def admin_connect(url: str, password: str, timeout: float = 2.0) -> Client:
    """Connect as the local stack's admin user (provisioning, status).

    A refused connection is a StackError at once (nats-py would keep retrying it for a
    while); something that accepts the connection and never answers (a hung server) is a
    StackNotAnswering after ``timeout`` seconds.
    """
    refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    async def first_error(exc: Exception) -> None:  # the StackError says it: no log noise
        if not refused.done():
            refused.set_result(exc)

    connecting = asyncio.ensure_future(
        nats.connect(
            url,
            user=ADMIN_USER,
            password=password,
            name="hms-ops-cli",
            allow_reconnect=False,
            connect_timeout=timeout,
            error_cb=first_error,
        )
    )
    either: set[asyncio.Future[Any]] = {connecting, refused}
    done, _ = await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if connecting in done and connecting.exception() is None:
        return connecting.result()
    connecting.cancel()
    with contextlib.suppress(BaseException):
        await connecting
    if not done:
        raise StackNotAnswering(
            f"the stack's NATS at {url} did not answer within {timeout:g}s; is `hms-ops up` "
            "hung? Restart it"
        )
    exc = refused.result() if refused.done() else connecting.exception()
    raise StackError(
        f"cannot reach the stack's NATS at {url}: {exc or type(exc).__name__}; is "
        "`hms-ops up` running?"
    )


def running_stack(paths: StatePaths) -> dict[str, Any]:
    """The stack file of the stack running from ``paths``; StackError when there is none."""
    stack = read_stack_file(paths)
    if stack is None:
        raise StackError(
            f"no stack is running from {paths.root} (no stack.json); start one with "
            "`hms-ops up` or set HMS_STATE_DIR"
        )
    return stack


@asynccontextmanager
async def admin_bus(paths: StatePaths) -> AsyncIterator[Client]:
    """A connection to the stack running from ``paths``, as its admin (the CLI's commands)."""
    nc = await admin_connect(running_stack(paths)["nats_url"], read_credentials(paths)[ADMIN_USER])
    try:
        yield nc
    finally:
        await nc.close()
