"""hms-ops SDK and CLI: ``from hms_ops import NOC, Metric, Alert, Playbook``."""

from importlib.metadata import version

from .declare import Alert, Metric, Playbook
from .errors import (
    ConflictError,
    ConnectError,
    HmsOpsError,
    InvalidObject,
    PermissionDenied,
    StackError,
)
from .noc import AsyncNOC
from .sync import NOC

__version__ = version("hms-ops")

__all__ = [
    "NOC",
    "Alert",
    "AsyncNOC",
    "ConflictError",
    "ConnectError",
    "HmsOpsError",
    "InvalidObject",
    "Metric",
    "PermissionDenied",
    "Playbook",
    "StackError",
    "__version__",
]
