"""The worker-pool's own metrics, on the service's ``/metrics`` beside the kit's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    """Runs by how each attempt ended, runs under way, and how long attempts take."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "hms_worker_runs",
            "Run attempts by outcome: completed, retried, dead_lettered, already_ended",
            ["outcome"],
            registry=registry,
        )
        self.items = Counter(
            "hms_worker_items",
            "Fanned-out work items by outcome: completed, retried, dead_lettered, already_done",
            ["outcome"],
            registry=registry,
        )
        self.running = Gauge(
            "hms_worker_running", "Runs this process works on now", registry=registry
        )
        self.duration = Histogram(
            "hms_worker_run_seconds",
            "Wall time of a run attempt, seconds",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
            registry=registry,
        )
