"""Helpers for tests and benchmarks of the console: tokens for every role, a small real
command responder on the bus, and a client that speaks as a token."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from hms_contracts.commands import CommandReplied, CommandRequested
from hms_kit import Service
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .context import Console
from .core.policy import ROLES
from .tokens import KvTokens, new_token, open_bucket

NS = "usds_unemployment"
OTHER = "ssa"


async def make_tokens(js: JetStreamContext, namespace: str = NS) -> dict[str, str]:
    """One token per role in ``namespace`` (named after the role), and ``other_admin``: an
    admin of another namespace."""
    store = KvTokens(await open_bucket(js, create=True))
    found: dict[str, str] = {}
    for role in ROLES:
        token, record = new_token(role, role, namespace)
        await store.put(record)
        found[role] = token
    token, record = new_token("other-admin", "admin", OTHER)
    await store.put(record)
    found["other_admin"] = token
    return found


@dataclass
class Running:
    """A console service started in the test's loop, with its URL and tokens."""

    service: Service
    console: Console
    url: str
    tokens: dict[str, str]
    ns: str = NS

    def client(self, who: str | None = None, **kw: object) -> httpx.AsyncClient:
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=20, follow_redirects=False
        )


@dataclass
class Responder:
    """Answers every command on the bus (ok, or ``refuse`` with a status); remembers them."""

    seen: list[CommandRequested] = field(default_factory=list)
    refuse: int | None = None

    async def on_msg(self, msg: Msg) -> None:
        request = CommandRequested.model_validate_json(msg.data)
        self.seen.append(request)
        ok = self.refuse is None
        reply = CommandReplied(
            request_id=request.request_id,
            ok=ok,
            status=200 if ok else (self.refuse or 409),
            detail=f"{request.command} of {request.target} "
            + ("done" if ok else "refused")
            + f" for {request.actor}",
        )
        await msg.respond(reply.model_dump_json().encode())
