"""Settings of the incident-engine service (environment prefix ``HMS_INCIDENT_ENGINE_``)."""

from __future__ import annotations

import os

from hms_kit import settings_config
from pydantic import Field, SecretStr

from .core import SERVICE
from .escalation import settings as escalation


class IncidentEngineSettings(escalation.EscalationSettings):
    """Everything the incident-engine reads from its environment."""

    model_config = settings_config(SERVICE)

    group_by: tuple[str, ...] = Field(
        default=(),
        description="Labels that group alerts of a namespace into one incident (JSON list; "
        "alertname is the rule); empty: one incident per fingerprint",
    )
    close_on_resolve: bool = Field(
        default=True, description="An alert's resolution closes its incident (auto_resolved)"
    )
    resolve_on_playbook_success: bool = Field(
        default=True, description="A playbook whose every step succeeded resolves its incident"
    )
    dry_run: bool = Field(
        default=False, description="Render and record playbook steps without running them"
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Secrets playbooks name as {{ secret.NAME }} (JSON object); masked everywhere",
    )
    step_path: str = Field(
        default_factory=lambda: os.environ.get("PATH", "/usr/bin:/bin"),
        description="PATH of a step's minimal environment",
    )
    output_cap_bytes: int = Field(
        default=16 * 1024, ge=256, le=1024 * 1024, description="Output kept per step"
    )
    kill_grace_s: float = Field(
        default=2.0, gt=0, le=60, description="Between SIGTERM and SIGKILL of a timed-out step"
    )
    python_steps: tuple[str, ...] = Field(
        default=(), description="module:function names python steps may call (JSON list)"
    )
    ticket_webhook_url: str | None = Field(
        default=None, description="Where tickets are POSTed as JSON, besides the bus"
    )
    alertmanager_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Alertmanager sends to /alertmanager/{namespace}; unset: the "
        "webhook refuses everything",
    )
    batch: int = Field(default=200, ge=1, le=1000, description="Alerts taken per fetch")
