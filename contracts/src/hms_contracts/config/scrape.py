"""The ``scrape_target`` kind: a Prometheus text endpoint the metrics-collector reads."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from hms_contracts.fields import Labels

from .base import ConfigObject, Duration, kind, parse_duration

DEFAULT_TIMEOUT_S = 10.0
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


@kind
class ScrapeTarget(ConfigObject):
    """A ``/metrics`` endpoint scraped like Prometheus does: every ``interval``, given up after
    ``timeout``; its samples carry ``labels`` plus ``job`` (the target's name) and ``instance``
    (host:port), and ``up`` and ``scrape_duration_seconds`` are recorded for it."""

    kind: ClassVar[str] = "scrape_target"

    url: str = Field(description="The http(s) URL of the Prometheus text exposition")
    interval: Duration = Field(default="1m", description="How often to scrape")
    timeout: Duration | None = Field(
        default=None,
        description="Give up on one scrape after this (default: 10s, or the interval if shorter)",
    )
    labels: Labels = Field(default_factory=dict, description="Labels added to every sample")
    sample_limit: int = Field(
        default=50_000,
        ge=1,
        le=1_000_000,
        description="A scrape with more samples than this fails (up = 0), as in Prometheus",
    )
    body_limit_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="A response body larger than this fails the scrape (up = 0)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not _URL.fullmatch(value):
            raise ValueError(f"url {value!r} must be an http(s) URL")
        return value

    def timeout_s(self) -> float:
        """The timeout in seconds, defaults applied."""
        interval = parse_duration(self.interval).total_seconds()
        if self.timeout is None:
            return min(DEFAULT_TIMEOUT_S, interval)
        return parse_duration(self.timeout).total_seconds()

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> ScrapeTarget:
        if self.timeout is not None and parse_duration(self.timeout) > parse_duration(
            self.interval
        ):
            raise ValueError(
                f"timeout {self.timeout!r} must not exceed interval {self.interval!r} "
                "(as in Prometheus)"
            )
        return self
