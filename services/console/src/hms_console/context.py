"""Everything the console's routes use, opened once by the service and handed to the app."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hms_contracts.commands import CommandReplied, CommandRequested
from hms_contracts.config import ConfigObject
from hms_ops.configstore import ConfigStore
from nats.aio.client import Client
from nats.js import JetStreamContext

from .core.limits import RateLimit
from .core.policy import Principal
from .ports import AuditLog, Commands, OnCall
from .projection import Projection
from .settings import ConsoleSettings
from .tokens import KvTokens
from .webhooks import Deliveries


class ConfigSource:
    """The config objects the console follows (the kit's watcher), by namespace."""

    def objects(self, kind: str, namespace: str | None = None) -> list[ConfigObject]:
        raise NotImplementedError


@dataclass
class Console:
    """The console's resources (one per process)."""

    settings: ConsoleSettings
    tokens: KvTokens
    projection: Projection
    on_call: OnCall
    audit: AuditLog
    commands: Commands
    nc: Client  # the overrides done as their CLI does them (queue pause, dead letters ...)
    js: JetStreamContext
    config: ConfigSource
    store_for: Callable[[str], ConfigStore]  # the registry, writing as that author
    deliveries: Deliveries
    ingest_limit: RateLimit

    def store(self, author: str) -> ConfigStore:
        return self.store_for(author)

    def known_namespaces(self) -> list[str]:
        names = set(self.projection.namespaces)
        for kind in ("metric", "alert", "job", "playbook", "slo"):
            names |= {o.namespace for o in self.config.objects(kind)}
        return sorted(names)

    async def command(
        self,
        principal: Principal,
        namespace: str,
        command: str,
        target: str,
        args: Mapping[str, object] | None = None,
    ) -> CommandReplied:
        """Send a command as the caller, audit it, return the owner's answer."""
        request = CommandRequested.model_validate(
            {
                "request_id": f"req-{secrets.token_hex(8)}",
                "namespace": namespace,
                "command": command,
                "target": target,
                "actor": principal.actor,
                "role": principal.role,
                "requested_at": datetime.now(UTC),
                "args": dict(args or {}),
            }
        )
        try:
            reply = await self.commands.send(request, self.settings.command_timeout_s)
        except Exception as exc:
            await self.audit.record(
                namespace,
                principal.actor,
                f"console.{command}",
                target,
                {"outcome": type(exc).__name__, "request_id": request.request_id},
            )
            raise
        await self.audit.record(
            namespace,
            principal.actor,
            f"console.{command}",
            target,
            {
                "outcome": "ok" if reply.ok else "refused",
                "status": str(reply.status),
                "request_id": request.request_id,
            },
        )
        return reply
