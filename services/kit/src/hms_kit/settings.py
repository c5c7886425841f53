"""Settings every service shares. A service subclasses this with its own env prefix."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def env_prefix(service: str) -> str:
    """Environment prefix of a service's settings, e.g. ``HMS_WORKER_POOL_``."""
    return "HMS_" + service.upper().replace("-", "_") + "_"


def settings_config(service: str) -> SettingsConfigDict:
    """The settings configuration of a service: its env prefix, frozen, other variables ignored.

    ``model_config = settings_config("evaluator")`` in the service's settings class.
    """
    return SettingsConfigDict(env_prefix=env_prefix(service), extra="ignore", frozen=True)


class ServiceSettings(BaseSettings):
    """Connection, HTTP, heartbeat, logging and tracing settings of one service process."""

    model_config = SettingsConfigDict(env_prefix="HMS_SERVICE_", extra="ignore", frozen=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server URL(s), comma")
    nats_user: str | None = Field(default=None, description="NATS user name")
    nats_password: SecretStr | None = Field(default=None, description="NATS password")
    nats_creds_file: Path | None = Field(default=None, description="NATS .creds file (JWT)")
    http_host: str = Field(default="127.0.0.1", description="Address of /healthz and /metrics")
    http_port: int = Field(default=0, ge=0, le=65535, description="Port (0: any free port)")
    instance_id: str = Field(
        default_factory=lambda: secrets.token_hex(6),
        pattern=r"^[A-Za-z0-9_-]{1,64}$",  # a token of registry keys and client names
        description="Id of this process: letters, digits, '-' and '_' (at most 64)",
    )
    heartbeat_interval_s: float = Field(default=2.0, gt=0, description="Heartbeat period")
    lease_renew_s: float | None = Field(
        default=None, gt=0, description="Lease renewal period (default: a third of the TTL)"
    )
    state_dir: Path = Field(default=Path("."), description="Where the service keeps its SQLite")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: JSON unless stderr is a terminal"
    )
    log_level: str = Field(
        default="INFO", description="Python logging level: DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint; spans are exported when set"
    )
    drain_timeout_s: float = Field(default=10.0, gt=0, description="Grace period on SIGTERM")
    # --- beyond one machine: a NATS cluster, TLS -------------------------------------------
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Replicas of the streams and buckets this service provisions (3 on a "
        "3-node cluster; must match what the admin provisioned)",
    )
    nats_tls_ca: Path | None = Field(
        default=None, description="CA bundle that signed nats-server's certificate: TLS on"
    )
    nats_tls_cert: Path | None = Field(
        default=None, description="Client certificate, when nats-server verifies clients"
    )
    nats_tls_key: Path | None = Field(default=None, description="Key of the client certificate")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def settings_error(exc: ValidationError) -> str:
    """Name each bad environment variable and what is wrong with it."""
    prefix = next(
        (
            str(c.model_config.get("env_prefix", ""))
            for c in _settings_classes()
            if c.__name__ == exc.title
        ),
        "",
    )
    lines = [f"error: invalid settings ({exc.title}):"]
    for err in exc.errors():
        field = "_".join(str(p) for p in err["loc"]).upper()
        lines.append(f"  {prefix}{field}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _settings_classes() -> list[type[ServiceSettings]]:
    found: list[type[ServiceSettings]] = []
    todo: list[type[ServiceSettings]] = [ServiceSettings]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found
