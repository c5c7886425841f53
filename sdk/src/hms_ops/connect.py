"""How a client finds the bus and connects as its namespace's client.

In order: explicit arguments; ``HMS_NATS_URL`` with ``HMS_NATS_USER``/``HMS_NATS_PASSWORD`` or
``HMS_NATS_CREDS``; the local stack started by ``hms-ops up`` (``HMS_STATE_DIR`` or the
default state folder), whose namespace client credential is created when missing (that needs
the stack package and local access to the state folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

import nats
from hms_contracts import subjects
from hms_contracts.errors import SubjectError
from hms_contracts.tokens import check_namespace
from nats.aio.client import Client

from .errors import ConnectError, HmsOpsError, PermissionDenied, StackError
from .state import StatePaths, default_state_dir, read_namespace_client, read_stack_file

log = logging.getLogger(__name__)

T = TypeVar("T")

#: entry-point group of the local stack's credential maker (``hms_stack`` provides it)
NAMESPACES_GROUP = "hms_ops.namespaces"


def normalise_namespace(namespace: str) -> str:
    """``USDS_Unemployment`` is ``usds_unemployment``; ConnectError saying why a name is not one."""
    try:
        return check_namespace(namespace.strip().lower())
    except SubjectError as exc:
        raise ConnectError(str(exc)) from None


@dataclass(frozen=True)
class Target:
    """Where to connect and as whom, and how that was found."""

    url: str
    how: str
    user: str | None = None
    password: str | None = None
    creds: str | None = None
    #: the local stack's state folder, when the credential came from there
    local: Path | None = None


def _local_maker() -> Callable[..., dict[str, str]] | None:
    for ep in entry_points(group=NAMESPACES_GROUP):
        if ep.name == "ensure":
            maker: Callable[..., dict[str, str]] = ep.load()
            return maker
    return None


async def local_credential(
    state_dir: Path, namespace: str, durables: tuple[str, ...] = ()
) -> dict[str, str]:
    """The namespace's client credential in a local stack's state folder, created (or given
    ``durables``) when missing."""
    paths = StatePaths(state_dir)
    found = read_namespace_client(paths, namespace)
    if found is not None and set(durables) <= set(found.get("durables") or ()):
        return {"user": found["user"], "password": found["password"]}
    maker = _local_maker()
    if maker is None:
        raise ConnectError(
            f"namespace {namespace} has no client credential in {state_dir}"
            + (f" allowing durable {', '.join(durables)}" if durables else "")
            + f"; run `hms-ops namespaces create {namespace}"
            + "".join(f" --durable {d}" for d in durables)
            + "` where the stack runs"
        )
    try:
        return await asyncio.to_thread(maker, state_dir, namespace, durables)
    except HmsOpsError as exc:
        raise ConnectError(f"cannot create the client of namespace {namespace}: {exc}") from None


async def find_target(
    namespace: str,
    *,
    url: str | None = None,
    user: str | None = None,
    password: str | None = None,
    creds: str | None = None,
    state_dir: Path | None = None,
) -> Target:
    """Where the client of ``namespace`` connects, by the rules of this module."""
    if url or user or creds:
        return Target(url or "nats://127.0.0.1:4222", "the arguments", user, password, creds)
    env = os.environ
    if env.get("HMS_NATS_URL"):
        return Target(
            env["HMS_NATS_URL"],
            "HMS_NATS_URL and credentials from the environment",
            env.get("HMS_NATS_USER"),
            env.get("HMS_NATS_PASSWORD"),
            env.get("HMS_NATS_CREDS"),
        )
    root = (state_dir or default_state_dir()).expanduser()
    paths = StatePaths(root)
    try:
        stack = read_stack_file(paths)
    except StackError as exc:
        raise ConnectError(str(exc)) from None
    if stack is None:
        raise ConnectError(
            f"nothing to connect to: no arguments, no HMS_NATS_URL, and no local stack in "
            f"{root} (start one with `hms-ops up`, or set HMS_STATE_DIR)"
        )
    cred = await local_credential(root, namespace)
    return Target(
        stack["nats_url"], f"the local stack in {root}", cred["user"], cred["password"], local=root
    )


@dataclass
class Bus:
    """One connection of a namespace's client, and the permission violations it was told of."""

    nc: Client
    namespace: str
    target: Target
    violations: list[str] = field(default_factory=list)
    revoked: str | None = None
    _violated: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def who(self) -> str:
        return self.target.user or "an anonymous client"

    async def on_error(self, err: Exception) -> None:
        text = str(err)
        if "permissions violation" in text.lower():
            self.violations.append(text)
            self._violated.set()
        elif "authorization" in text.lower() and self.nc is not None:
            # refused on a reconnect: the credential was revoked (or changed) while connected;
            # retrying forever would only hammer the server, so stop and say why
            if self.revoked is None:
                self.revoked = (
                    f"{self.target.url} refused {self.who} on reconnecting (bad or revoked "
                    f"credentials); the client of {self.namespace} is closed"
                )
                log.error("%s", self.revoked)
                asyncio.get_running_loop().create_task(self.nc.close())
            self._violated.set()
        else:
            log.warning("bus error on %s: %s", self.target.url, text)

    def refused(self, token: str) -> str | None:
        """The last violation that names ``token``, if any."""
        return next((v for v in reversed(self.violations) if token in v), None)

    async def guard(self, op: Awaitable[T], what: str, token: str, timeout: float = 5.0) -> T:
        """Run ``op``; a permission violation naming ``token`` while it runs, or its failure
        after one, is PermissionDenied naming ``what`` (the server answers a refused publish
        with no reply at all, so waiting out a timeout would say nothing)."""
        if self.revoked is not None:
            if inspect.iscoroutine(op):
                op.close()  # never started: nothing to wait for
            self.check_open(what)
        task = asyncio.ensure_future(op)
        seen = len(self.violations)
        while not task.done():
            self._violated.clear()
            flag = asyncio.ensure_future(self._violated.wait())
            done, _ = await asyncio.wait(
                {task, flag}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            flag.cancel()
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                raise ConnectError(f"{what}: no answer from {self.target.url} in {timeout:g}s")
            if self.revoked is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                self.check_open(what)
            if any(token in v for v in self.violations[seen:]):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                raise self.denied(what, token)
        try:
            return task.result()
        except Exception:
            if self.refused(token):
                raise self.denied(what, token) from None
            raise

    def check_open(self, what: str) -> None:
        """ConnectError if the server refused this client's credential since it connected."""
        if self.revoked is not None:
            raise ConnectError(f"{what}: {self.revoked}")

    def denied(self, what: str, token: str) -> PermissionDenied:
        detail = self.refused(token) or "permissions violation"
        return PermissionDenied(
            f"{what}: {self.who} may not ({detail.strip()}); a namespace's client reaches only "
            f"its own namespace, {self.namespace}"
        )


async def open_bus(namespace: str, target: Target, name: str, timeout: float = 3.0) -> Bus:
    """Connect; ConnectError in one line when nothing listens or the credential is refused."""
    first: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
    bus = Bus(nc=None, namespace=namespace, target=target)  # type: ignore[arg-type]

    async def on_error(err: Exception) -> None:
        if not first.done():
            first.set_result(err)
        await bus.on_error(err)

    options: dict[str, Any] = {
        "name": name,
        "inbox_prefix": subjects.namespace_inbox_prefix(namespace),
        "error_cb": on_error,
        "connect_timeout": timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "allow_reconnect": True,
    }
    if target.creds:
        options["user_credentials"] = target.creds
    elif target.user:
        options["user"], options["password"] = target.user, target.password
    connecting = asyncio.ensure_future(nats.connect(target.url, **options))
    either: set[asyncio.Future[Any]] = {connecting, first}
    done, _ = await asyncio.wait(either, timeout=timeout + 1, return_when=asyncio.FIRST_COMPLETED)
    if connecting in done and connecting.exception() is None:
        bus.nc = connecting.result()
        log.info("connected to %s as %s, found through %s", target.url, bus.who, target.how)
        return bus
    connecting.cancel()
    with contextlib.suppress(BaseException):
        await connecting
    exc = (
        first.result() if first.done() else (connecting.exception() if connecting.done() else None)
    )
    text = str(exc or "no answer").strip()
    if "authorization" in text.lower():
        raise ConnectError(
            f"{target.url} refused {bus.who} (bad or revoked credentials; found through "
            f"{target.how})"
        )
    raise ConnectError(
        f"cannot connect to {target.url} (found through {target.how}): "
        f"{text or type(exc).__name__}; is the stack running?"
    )
