"""The incident engine's Prometheus metrics, on the service's registry (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.signals = Counter(
            "hms_incident_engine_signals",
            "Alerts and breaches taken, by what they did: opened, joined, refired, duplicate, "
            "silenced, resolved",
            ["outcome"],
            registry=r,
        )
        self.steps = Counter(
            "hms_incident_engine_steps",
            "Playbook steps ended, by kind and status",
            ["action", "status"],
            registry=r,
        )
        self.runs = Counter(
            "hms_incident_engine_runs",
            "Playbook runs ended or refused, by outcome",
            ["outcome"],
            registry=r,
        )
