"""Signed, expiring acknowledge links: ``<payload>.<signature>``, both base64url.

The payload names the incident, the address the link was sent to, its expiry and a nonce; the
signature is HMAC-SHA256 over the payload with the service's key. A link is single-use: its
nonce is recorded when the link is issued and consumed once (see the store); the signature
makes a guessed or edited link worthless without a look-up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import LinkRefused

KEY_FILE = "escalation-link.key"


@dataclass(frozen=True, slots=True)
class AckClaim:
    """What an acknowledge link says."""

    namespace: str
    incident_id: str
    address: str
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signs and checks acknowledge links with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the acknowledge link key must be at least 32 bytes")
        self._key = key

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def sign(self, claim: AckClaim) -> str:
        body = {
            "n": claim.namespace,
            "i": claim.incident_id,
            "a": claim.address,
            "x": int(claim.expires_at.timestamp()),
            "j": claim.nonce,
        }
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: datetime) -> AckClaim:
        """The claim of a genuine, unexpired link; LinkRefused (403 forged, 410 expired)."""
        payload, _, mac = token.partition(".")
        if not payload or not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkRefused("this acknowledge link is not genuine", 403)
        try:
            body = json.loads(_unb64(payload))
            claim = AckClaim(
                namespace=str(body["n"]),
                incident_id=str(body["i"]),
                address=str(body["a"]),
                expires_at=datetime.fromtimestamp(int(body["x"]), UTC),
                nonce=str(body["j"]),
            )
        except (ValueError, KeyError, TypeError):
            raise LinkRefused("this acknowledge link is not genuine", 403) from None
        if now >= claim.expires_at:
            raise LinkRefused("this acknowledge link has expired", 410)
        return claim


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def load_or_create_key(state_dir: Path) -> bytes:
    """The key kept in the state directory (created once, readable by the owner only), so links
    sent before a restart still work after it."""
    path = state_dir / KEY_FILE
    if path.exists():
        return path.read_bytes()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another instance made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
