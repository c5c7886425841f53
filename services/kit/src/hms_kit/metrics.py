"""Prometheus metrics every service exports, in one registry per service."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Info


@dataclass
class KitMetrics:
    """The kit's own metrics; a service adds its own to ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.info = Info("hms_service", "Service identity", registry=r)
        self.nats_errors = Counter(
            "hms_nats_errors", "Errors reported by the NATS connection", ["kind"], registry=r
        )
        self.permission_violations = Counter(
            "hms_nats_permission_violations",
            "Publishes or subscriptions refused by the server's permissions",
            registry=r,
        )
        self.reconnects = Counter("hms_nats_reconnects", "Reconnections to NATS", registry=r)
        self.connected = Gauge("hms_nats_connected", "1 while connected to NATS", registry=r)
        self.dead_letters = Counter(
            "hms_dead_letters", "Messages sent to the dead-letter stream", ["subject"], registry=r
        )
        self.heartbeats = Counter("hms_heartbeats", "Heartbeats published", registry=r)
        self.leader = Gauge("hms_lease_leader", "1 while this instance holds its lease", registry=r)
        self.degraded = Gauge(
            "hms_degraded",
            "1 while a part of the service cannot do its work (the reason is the label)",
            ["part"],
            registry=r,
        )
        self.config_rejected = Counter(
            "hms_config_rejected",
            "Config entries refused by validation (the last good version was kept)",
            ["kind"],
            registry=r,
        )
        self.config_unreadable = Gauge(
            "hms_config_unreadable", "Config entries currently unreadable", registry=r
        )
        self.messages = Counter(
            "hms_messages", "Messages handled by kit consumers", ["consumer", "outcome"], registry=r
        )
