"""``hms-ops status``: every service as the registry sees it, and what is wrong."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from hms_contracts import ServiceHeartbeat, topology
from nats.errors import Error as NatsError

from .errors import StackError, StackNotAnswering
from .registry import is_stale, read_registry
from .state import (
    ADMIN_USER,
    StatePaths,
    admin_connect,
    read_credentials,
    read_stack_file,
    running_stack,
)


@dataclass(frozen=True)
class InstanceStatus:
    """One row of the status table."""

    service: str
    state: str  # ok | unhealthy | stale | missing
    version: str | None = None
    instance: str | None = None
    health: str | None = None
    uptime_s: float | None = None
    leader: bool | None = None
    pid: int | None = None
    http_url: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


async def collect_status(paths: StatePaths) -> list[InstanceStatus]:
    """Ask the registry of the stack running from ``paths`` about every service."""
    stack = running_stack(paths)
    creds = read_credentials(paths)
    beats = await _read_registry(stack["nats_url"], creds[ADMIN_USER])
    now = datetime.now(UTC)
    rows: list[InstanceStatus] = []
    for name in topology.SERVICE_NAMES:
        mine = [b for b in beats if b.service == name]
        if not mine:
            rows.append(InstanceStatus(service=name, state="missing"))
            continue
        for beat in mine:
            if is_stale(beat, now):
                state = "stale"
            elif beat.health != "ok":
                state = "unhealthy"
            else:
                state = "ok"
            rows.append(
                InstanceStatus(
                    service=name,
                    state=state,
                    version=beat.version,
                    instance=beat.instance_id,
                    health=beat.health,
                    uptime_s=round((now - beat.started_at).total_seconds(), 1),
                    leader=beat.leader,
                    pid=beat.pid,
                    http_url=beat.http_url,
                )
            )
    return rows


async def _read_registry(
    url: str, password: str, patience_s: float = 2.5
) -> list[ServiceHeartbeat]:
    """The registry. A server that has just restarted may refuse a moment, or be slow to
    accept while every service reconnects (each password check is a bcrypt hash): retry."""
    deadline = time.monotonic() + patience_s
    refused: StackError | None = None
    while True:
        try:
            # a StackError that says what to do; retries get what is left of the patience
            left = deadline - time.monotonic()
            nc = await admin_connect(url, password, 2.0 if refused is None else max(left, 0.2))
        except StackNotAnswering:
            if refused is not None:  # it refused before: it is down, not hung
                raise refused from None
            raise  # hung: waiting longer would not help
        except StackError as exc:
            refused = exc
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        try:
            return await read_registry(nc.jetstream())
        except (NatsError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise StackError(f"cannot read the service registry at {url}: {exc!r}") from exc
        finally:
            await nc.close()
        await asyncio.sleep(0.1)


def problems(rows: list[InstanceStatus]) -> list[str]:
    """One line per thing that makes ``status`` fail.

    A stale row beside a healthy one is an instance that died and was replaced (killed
    instances cannot deregister; their entry lapses with its TTL): shown, not failed.
    """
    lines: list[str] = []
    for name in dict.fromkeys(r.service for r in rows):
        mine = [r for r in rows if r.service == name]
        healthy = [r for r in mine if r.ok]
        if all(r.state == "missing" for r in mine):
            lines.append(f"{name}: no instance in the registry")
        elif not healthy:
            lines.append(f"{name}: no healthy instance (stopped beating or failing)")
        lines += [
            f"{name}: instance {r.instance} beats unhealthy ({r.health})"
            for r in mine
            if r.state == "unhealthy"
        ]
        singleton = name in topology.SERVICE_NAMES and topology.service(name).singleton
        if singleton and healthy and not any(r.leader for r in healthy):
            lines.append(
                f"{name}: {len(healthy)} healthy instance(s) but none holds the lease: "
                "no leader, so its decisions are not being made"
            )
    return lines


def stack_problems(paths: StatePaths) -> list[str]:
    """What the stack itself reports: messages JetStream lost when it recovered its store."""
    stack = read_stack_file(paths) or {}
    return [f"JetStream lost data on recovery: {line}" for line in stack.get("data_loss", [])]


def as_json(rows: list[InstanceStatus]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)
