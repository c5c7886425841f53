"""Settings of the metrics-collector service (environment prefix ``HMS_METRICS_COLLECTOR_``)."""

from __future__ import annotations

from hms_kit import ServiceSettings, settings_config
from pydantic import Field, model_validator

from .core import SERVICE


class MetricsCollectorSettings(ServiceSettings):
    """Everything the metrics-collector reads from its environment."""

    model_config = settings_config(SERVICE)

    raw_retention_s: float = Field(
        default=2 * 3600.0, gt=0, description="How long raw samples are kept, seconds"
    )
    retention_s: float = Field(
        default=30 * 86400.0, gt=0, description="How long 1-minute rollups are kept, seconds"
    )
    prune_every_s: float = Field(default=60.0, gt=0, description="Housekeeping period, seconds")
    namespaces: str = Field(
        default="",
        description="Namespaces whose samples are taken (comma); empty: every namespace. Those "
        "with a registered metric or scrape target are always taken",
    )
    max_batch_samples: int = Field(
        default=10_000, ge=1, le=10_000, description="Most samples one batch may carry"
    )
    max_series_per_namespace: int = Field(
        default=10_000, ge=1, description="New series beyond this, per namespace, are refused"
    )
    max_labels: int = Field(default=32, ge=0, le=128, description="Most labels one sample has")
    fetch_batch: int = Field(
        default=200, ge=1, le=1000, description="Messages stored per transaction (at most)"
    )
    shard_index: int = Field(default=0, ge=0, description="This instance's scrape shard")
    shard_count: int = Field(
        default=1, ge=1, description="Scrape shards: each target is scraped by one of them"
    )
    scrape: bool = Field(default=True, description="Scrape targets (off: store and answer only)")
    prometheus_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="A Prometheus-compatible backend: samples are also remote-written to it "
        "(/api/v1/write) and queries go through its HTTP API (/api/v1/query_range)",
    )

    @model_validator(mode="after")
    def _shard_in_range(self) -> MetricsCollectorSettings:
        if self.shard_index >= self.shard_count:
            raise ValueError(
                f"shard_index {self.shard_index} must be below shard_count {self.shard_count}"
            )
        return self

    def accepted_namespaces(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.namespaces.split(",") if n.strip())
