"""Settings of the console service (environment prefix ``HMS_CONSOLE_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config
from pydantic import Field, SecretStr

from .core import SERVICE
from .webhooks import Webhook


class ConsoleSettings(ServiceSettings):
    """Everything the console reads from its environment."""

    model_config = settings_config(SERVICE)

    api_host: str = Field(default="127.0.0.1", description="Address of the API and dashboard")
    api_port: int = Field(
        default=8700, ge=0, le=65535, description="Port of the API and dashboard (0: any free)"
    )
    public_url: str | None = Field(
        default=None, description="URL people reach the console at, when behind a proxy"
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key signing browser sessions; unset: a random one per process "
        "(sessions end with the process, and do not cross instances)",
    )
    secure_cookies: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (set behind TLS)"
    )
    session_max_age_s: int = Field(default=8 * 3600, ge=60, description="Browser session life")
    metric_window_s: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="How much metric history stays in memory"
    )
    metric_window_points: int = Field(
        default=50_000, ge=100, description="Most points kept per metric series"
    )
    slo_target: float = Field(
        default=0.99, gt=0, lt=1, description="Objective of an alert's promise without an SLO"
    )
    command_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="How long a command waits for its owner's answer"
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest ingest request body (413 above)"
    )
    ingest_rate_per_s: float = Field(
        default=20.0, gt=0, description="Ingest requests per second per token (429 above)"
    )
    ingest_burst: float = Field(default=40.0, ge=1, description="Ingest burst per token")
    webhooks: tuple[Webhook, ...] = Field(
        default=(), description="Outbound webhooks for incident and breach events (JSON list)"
    )
    webhook_attempts: int = Field(default=6, ge=1, le=20, description="Tries per delivery")
    webhook_backoff_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubles each time"
    )
