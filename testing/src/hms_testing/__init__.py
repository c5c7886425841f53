"""Test support for hms-ops: real nats-server, service subprocesses, waiting with deadlines.

The pytest fixtures live in :mod:`hms_testing.plugin`.
"""

from .metrics import metric_value
from .plugin import connect
from .processes import ServiceLauncher, ServiceProcess, ServiceStartError
from .running import running
from .servers import ContainerNats, ExternalNats, LocalNats, NatsHandle, open_nats
from .waiting import wait_for, wait_until

__all__ = [
    "ContainerNats",
    "ExternalNats",
    "LocalNats",
    "NatsHandle",
    "ServiceLauncher",
    "ServiceProcess",
    "ServiceStartError",
    "connect",
    "metric_value",
    "open_nats",
    "running",
    "wait_for",
    "wait_until",
]
