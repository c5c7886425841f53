"""Escalation's settings: the SMTP server, the acknowledge links and the engine's pace.

The incident-engine's settings class inherits them, so they read the service's own prefix
(``HMS_INCIDENT_ENGINE_SMTP_HOST`` ...). Secrets are ``SecretStr``: never printed or logged.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Self

from hms_kit import ServiceSettings, settings_config
from pydantic import Field, SecretStr, model_validator

from hms_incident_engine.core import SERVICE


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EscalationSettings(ServiceSettings):
    """SMTP, acknowledge links and the escalation loop."""

    model_config = settings_config(SERVICE)

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (upgrade, required), tls (implicit TLS, port 465) or none "
        "(loopback relays only when credentials are set)",
    )
    smtp_username: str | None = Field(default=None, description="SMTP user name")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_from: str = Field(
        default="hms-ops@localhost", description="Sender address of notifications"
    )
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=300, description="SMTP timeout")
    ack_link_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs acknowledge links (default: a random key kept in the "
        "state directory)",
    )
    ack_link_ttl_s: float = Field(
        default=86400.0, gt=0, le=30 * 86400, description="How long an acknowledge link works"
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL people reach the service's HTTP server at, for acknowledge links "
        "(default: the server's own address)",
    )
    escalation_tick_s: float = Field(
        default=1.0, gt=0, le=10, description="How often due escalation steps are looked for"
    )
    escalation_error_after_s: float = Field(
        default=30.0,
        gt=0,
        le=55,
        description="A notification not sent this long after its due time raises an alert",
    )
    escalation_retry_max_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between two delivery attempts"
    )
    escalation_give_up_s: float = Field(
        default=3600.0,
        gt=0,
        description="A notification still not sent this long after its "
        "due time is given up (it already raised an alert)",
    )

    escalation_probe_every_s: float | None = Field(
        default=None,
        ge=60,
        description="Send a test notification this often (unset: no probe); one not accepted "
        "by the SMTP server in time raises an escalation_probe_failed alert",
    )
    escalation_probe_to: str | None = Field(
        default=None, description="Address the test notifications go to"
    )

    @model_validator(mode="after")
    def _strong_link_key(self) -> Self:
        secret = self.ack_link_secret
        if secret is not None and len(secret.get_secret_value().encode()) < 32:
            raise ValueError("ack_link_secret must be at least 32 bytes (it signs the links)")
        return self

    @model_validator(mode="after")
    def _probe_has_an_address(self) -> Self:
        if (self.escalation_probe_every_s is None) != (self.escalation_probe_to is None):
            raise ValueError("escalation_probe_every_s and escalation_probe_to go together")
        return self

    @model_validator(mode="after")
    def _no_clear_text_password(self) -> Self:
        if self.smtp_security == "none" and self.smtp_password and not _loopback(self.smtp_host):
            raise ValueError(
                f"smtp_security none would send the SMTP password in clear text to "
                f"{self.smtp_host}; use starttls or tls"
            )
        return self
