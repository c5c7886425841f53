"""The metrics-collector's own metrics, on the service's ``/metrics`` beside the kit's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .core import REASONS


class CollectorMetrics:
    """Samples stored, samples and batches refused by reason, scrapes by outcome."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.samples = Counter("hms_metrics_samples_stored", "Samples stored", registry=r)
        self.rejected_samples = Counter(
            "hms_metrics_samples_rejected",
            "Samples refused, by reason: " + ", ".join(REASONS),
            ["reason"],
            registry=r,
        )
        self.rejected_batches = Counter(
            "hms_metrics_batches_rejected",
            "Whole batches refused (dead-lettered), by reason",
            ["reason"],
            registry=r,
        )
        self.write_seconds = Histogram(
            "hms_metrics_write_seconds",
            "Checking and storing one fetched batch of messages, seconds",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.scrapes = Counter(
            "hms_metrics_scrapes", "Scrapes by outcome: ok, failed", ["outcome"], registry=r
        )
        self.scrape_delay = Histogram(
            "hms_metrics_scrape_start_delay_seconds",
            "How late a scrape started after its slot, seconds",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.scrape_dropped = Counter(
            "hms_metrics_scrape_batches_dropped",
            "Scraped batches dropped because JetStream fell too far behind",
            registry=r,
        )
        self.targets = Gauge(
            "hms_metrics_scrape_targets", "Targets this instance scrapes", registry=r
        )
        self.queries = Counter(
            "hms_metrics_queries", "Queries answered by outcome: ok, error", ["outcome"], registry=r
        )
