"""Constrained field types the events share, so each rule is written once.

Each type carries its own JSON Schema constraints, so the generated AsyncAPI document
states the same limits the models enforce.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from .tokens import TOKEN_PART, TOKEN_PATTERN, check_token, check_tokens


def _check_metric_name(value: str) -> str:
    # A metric name may end up as subject tokens and Prometheus names, so it follows
    # the subject token rule dot by dot (one rule, in subjects); SubjectError is a ValueError.
    if len(value) > 200:
        raise ValueError(f"metric name {value[:40]!r}... is longer than 200 characters")
    check_tokens(value, "metric name")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"\S")]
"""Non-empty, non-blank text of at most 1 KiB."""

LongText = Annotated[str, StringConstraints(max_length=65536)]
"""Free text up to 64 KiB (may be empty), e.g. captured command output."""

Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
"""An identifier: letters, digits, '_', '.', ':' and '-', starting with a letter or digit."""

Token = Annotated[
    str,
    AfterValidator(check_token),
    Field(json_schema_extra={"pattern": TOKEN_PATTERN}),
]
"""A single NATS subject token: it is routed on, so queue, pool and source names are tokens."""

MetricName = Annotated[
    str,
    AfterValidator(_check_metric_name),
    Field(
        json_schema_extra={"pattern": rf"^{TOKEN_PART}(\.{TOKEN_PART})*$"},
        examples=["api.latency_p99"],
    ),
]
"""A dotted metric name such as ``api.latency_p99``; every token is a valid subject token."""

LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
"""A Prometheus-compatible label name."""

Labels = dict[LabelName, Annotated[str, StringConstraints(max_length=1024)]]
"""Label set: names as in Prometheus, values up to 1 KiB."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither infinite nor NaN (JSON cannot carry those and rules cannot compare)."""

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A finite float >= 0, e.g. a duration in seconds."""

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A lower-case hex SHA-256 digest."""

Fingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,64}$")]
"""Lower-case hex fingerprint of an alert's identity (Alertmanager's are 16 characters)."""

Severity = Literal["info", "warning", "critical"]

_RUN_ID = re.compile(r"^(?P<job>[^@]+)@(?P<at>.+)$")


def split_run_id(run_id: str) -> tuple[str, str]:
    """Split ``job_id@scheduled_at`` into its two parts; ValueError when it has no '@'."""
    match = _RUN_ID.fullmatch(run_id)
    if match is None:
        raise ValueError(f"run id {run_id!r} must look like <job_id>@<scheduled_at_utc>")
    return match["job"], match["at"]
