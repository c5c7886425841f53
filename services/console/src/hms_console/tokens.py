"""API tokens: made once, shown once, kept only as a bcrypt hash.

A token reads ``hms_<id>_<secret>``; the id finds its record (in the ``hms_console_tokens``
KV bucket), bcrypt checks the secret. A check that passed is remembered for the process by the
token's SHA-256 (bcrypt is slow by design) but the record is read again: at once when the
bucket says it changed (``follow``: a revocation holds as soon as it is written, whichever
process wrote it), and at the latest after ``RECORD_TTL_S``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from datetime import UTC, datetime

import bcrypt
from hms_contracts import specs
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .core.policy import ALL_NAMESPACES, Principal, Role

log = logging.getLogger(__name__)

BCRYPT_COST = 10
RECORD_TTL_S = 2.0
PREFIX = "hms"
_TOKEN = re.compile(r"^hms_([0-9a-f]{16})_([A-Za-z0-9_\-]{20,100})$")


class TokenRecord(BaseModel):
    """What the console keeps about a token (never the token)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[0-9a-f]{16}$", description="Public id, part of the token")
    name: str = Field(min_length=1, max_length=64, description="Who holds it, for the audit log")
    role: Role = Field(description="viewer, responder, author or admin")
    namespace: str = Field(description="Namespace it holds the role in ('*': every one)")
    created_at: AwareDatetime = Field(description="When it was made")
    expires_at: AwareDatetime | None = Field(default=None, description="When it stops working")
    revoked_at: AwareDatetime | None = Field(default=None, description="When it was revoked")
    secret_bcrypt: str = Field(description="bcrypt hash of the secret part")

    def principal(self) -> Principal:
        return Principal(self.id, self.name, self.role, self.namespace, self.expires_at)

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def new_token(
    name: str, role: Role, namespace: str, expires_at: datetime | None = None
) -> tuple[str, TokenRecord]:
    """A fresh token and its record; the token is not kept anywhere."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    record = TokenRecord(
        id=token_id,
        name=name,
        role=role,
        namespace=namespace,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        secret_bcrypt=hashed,
    )
    return f"{PREFIX}_{token_id}_{secret}", record


def split_token(token: str) -> tuple[str, str] | None:
    found = _TOKEN.fullmatch(token.strip())
    return None if found is None else (found.group(1), found.group(2))


async def open_bucket(js: JetStreamContext, *, create: bool = False) -> KeyValue:
    spec = specs.CONSOLE_TOKENS
    try:
        return await js.key_value(spec.bucket)
    except (BucketNotFoundError, NotFoundError):
        if not create:
            raise
        return await js.create_key_value(bucket=spec.bucket, history=spec.history)


class KvTokens:
    """Token records in the KV bucket, read by id, checked with bcrypt (off the loop)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._verified: dict[str, str] = {}  # sha256(token) -> record id
        self._records: dict[str, tuple[float, TokenRecord | None]] = {}

    async def put(self, record: TokenRecord) -> None:
        await self.kv.put(record.id, record.model_dump_json().encode())
        self._records.pop(record.id, None)

    async def follow(self, nc: Client) -> Subscription | None:
        """Forget a token's cached record the moment its key changes, through a consumer of
        the bucket's changes (named, so its filter is in the create subject permissions
        bound); if it cannot be made, records still expire after ``RECORD_TTL_S``."""
        spec = specs.CONSOLE_TOKENS
        deliver = nc.new_inbox()

        async def changed(msg: Msg) -> None:
            self._records.pop(msg.subject.removeprefix(f"$KV.{spec.bucket}."), None)

        sub = await nc.subscribe(deliver, cb=changed)
        config = ConsumerConfig(
            name=f"tokens_{secrets.token_hex(8)}",
            filter_subject=f"$KV.{spec.bucket}.>",
            deliver_subject=deliver,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            inactive_threshold=60.0,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            await nc.jetstream().add_consumer(specs.kv_stream(spec), config)
        except Exception as exc:  # e.g. no permission: the TTL still bounds a revocation
            await sub.unsubscribe()
            log.warning("cannot follow the token bucket (%s); revocations hold within %gs",
                        exc, RECORD_TTL_S)  # fmt: skip
            return None
        return sub

    async def record(self, token_id: str) -> TokenRecord | None:
        cached = self._records.get(token_id)
        if cached is not None and time.monotonic() - cached[0] < RECORD_TTL_S:
            return cached[1]
        try:
            entry = await self.kv.get(token_id)
            found = None if entry.value is None else TokenRecord.model_validate_json(entry.value)
        except KeyNotFoundError:
            found = None
        self._records[token_id] = (time.monotonic(), found)
        return found

    async def all(self) -> list[TokenRecord]:
        try:
            keys = await self.kv.keys()
        except Exception:  # nats-py raises NoKeysError for an empty bucket
            return []
        found = [await self.record(k) for k in keys]
        return sorted((r for r in found if r is not None), key=lambda r: r.created_at)

    async def authenticate(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal of a valid, live token; None otherwise (never says why)."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        record = await self.record(token_id)
        if record is None or not record.live(now or datetime.now(UTC)):
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        known = self._verified.get(digest)
        if known is None or not hmac.compare_digest(known, record.id + record.secret_bcrypt):
            ok = await asyncio.to_thread(
                bcrypt.checkpw, secret.encode(), record.secret_bcrypt.encode()
            )
            if not ok:
                return None
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = record.id + record.secret_bcrypt
        return record.principal()


def check_scope(role: str, namespace: str) -> tuple[Role, str]:
    """Validate a role and namespace given on the command line."""
    from hms_contracts.tokens import check_namespace

    from .core.policy import ROLES

    if role not in ROLES:
        raise ValueError(f"--role {role!r} must be one of {', '.join(ROLES)}")
    if namespace != ALL_NAMESPACES:
        check_namespace(namespace)
    elif role != "admin":
        raise ValueError("--namespace '*' (every namespace) is for admins only")
    return role, namespace
